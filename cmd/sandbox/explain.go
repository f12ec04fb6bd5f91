package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// message is an error in the words a user reads: a summary, the probed
// facts behind it, and the commands or flags that fix it.
type message struct {
	summary string
	causes  []string
	fixes   []string
	code    int // exit code; 0 means 125
}

func (m *message) write(w io.Writer) {
	fmt.Fprintf(w, "sandbox: %s\n", m.summary)
	for _, c := range m.causes {
		fmt.Fprintf(w, "  cause: %s\n", c)
	}
	for i, f := range m.fixes {
		if i == 0 {
			fmt.Fprintf(w, "  fix: %s\n", f)
		} else {
			fmt.Fprintf(w, "  or:  %s\n", f)
		}
	}
}

// explainers turn the typed errors of one area into a message, or return
// nil when the error is not theirs. The first that answers wins.
var explainers = []func(error) *message{
	explainUsage,
	explainSpec,
	// Before explainIDMap: fullMapError and MapError wrap idmap's errors
	// and add what the user asked for.
	explainUserns,
	explainIDMap,
	// After explainUserns and explainIDMap: it hands the helper's spawn
	// and map failures to them.
	explainImage,
}

// explain prints err in the project's error shape and returns the exit code.
// It is the only place errors become words.
func explain(e *env, err error) int {
	if isHelp(err) {
		return 0
	}
	m := describe(err)
	m.write(e.stderr)
	if e.debug {
		fmt.Fprintf(e.stderr, "  debug: %s\n", chain(err))
	}
	if m.code == 0 {
		return 125
	}
	return m.code
}

func describe(err error) *message {
	for _, x := range explainers {
		if m := x(err); m != nil {
			return m
		}
	}
	return &message{summary: err.Error()}
}

// chain renders the wrapped error chain, outermost first.
func chain(err error) string {
	var parts []string
	for err != nil {
		parts = append(parts, fmt.Sprintf("%T: %v", err, err))
		err = errors.Unwrap(err)
	}
	return strings.Join(parts, " <- ")
}

func explainUsage(err error) *message {
	var u *usageError
	if !errors.As(err, &u) {
		return nil
	}
	m := &message{summary: u.msg}
	if u.fix != "" {
		m.fixes = []string{u.fix}
	}
	return m
}
