package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"sandbox/preflight"
)

const doctorUsage = `Usage: sandbox doctor [OPTIONS]

Check this host for what sandbox needs and print, for each problem, the
command that fixes it. "problem" lines break the default 'sandbox run';
"warning" lines take away images, networking, limits or detached runs.
Exits 1 when there is a problem, else 0.

Options:
`

func cmdDoctor(e *env, args []string) (int, error) {
	format, err := parseReportFlags(e, "doctor", doctorUsage, args)
	if err != nil {
		return 0, err
	}
	checks := preflight.Run(context.Background(), hostOptions(e))
	return reportDoctor(e.stdout, format, checks)
}

// reportDoctor prints checks in format and returns the exit code: 1 when a
// required check failed.
func reportDoctor(w io.Writer, format string, checks []preflight.Check) (int, error) {
	if format == "json" {
		if err := writeDoctorJSON(w, checks); err != nil {
			return 0, err
		}
	} else {
		writeDoctorText(w, checks)
	}
	if required, _ := preflight.Failed(checks); required > 0 {
		return 1, nil
	}
	return 0, nil
}

// parseReportFlags parses the flags doctor and info share: --format and
// --debug. It returns the format, "text" or "json".
func parseReportFlags(e *env, name, usageText string, args []string) (string, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(e.stdout, usageText)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
	}
	format := fs.String("format", "text", "output `FORMAT`: text or json")
	debug := fs.Bool("debug", false, "log each probe and how long it took")
	fix := "sandbox help " + name
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return "", errHelp
		}
		return "", &usageError{msg: err.Error(), fix: fix}
	}
	if fs.NArg() > 0 {
		return "", &usageError{msg: fmt.Sprintf("%s takes no arguments, got %q", name, fs.Arg(0)), fix: fix}
	}
	if *format != "text" && *format != "json" {
		return "", &usageError{msg: fmt.Sprintf("invalid --format %q: want text or json", *format), fix: fix}
	}
	if *debug {
		e.enableDebug()
	}
	return *format, nil
}

// hostOptions describe the caller to the probes.
func hostOptions(e *env) preflight.Options {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	return preflight.Options{
		PathEnv:    os.Getenv("PATH"),
		RuntimeDir: os.Getenv("XDG_RUNTIME_DIR"),
		User:       userName(uid),
		UID:        uid,
		GID:        gid,
		Executable: exe,
		Log:        e.log,
	}
}

// Verdict words, padded so the names line up.
const (
	verdictOK      = "ok"
	verdictProblem = "problem"
	verdictWarning = "warning"
)

func verdict(c preflight.Check) string {
	switch {
	case c.OK:
		return verdictOK
	case c.Required:
		return verdictProblem
	}
	return verdictWarning
}

// writeDoctorText prints one line per check, its fixes under it in the
// project's error shape (the first "fix:", alternatives "or:"), and a
// summary.
func writeDoctorText(w io.Writer, checks []preflight.Check) {
	for _, c := range checks {
		fmt.Fprintf(w, "%-8s %s: %s\n", verdict(c), c.Name, c.Detail)
		if c.OK {
			continue
		}
		for i, f := range c.Fixes {
			if i == 0 {
				fmt.Fprintf(w, "  fix: %s\n", f)
			} else {
				fmt.Fprintf(w, "  or:  %s\n", f)
			}
		}
	}
	fmt.Fprintln(w, doctorSummary(checks))
}

func doctorSummary(checks []preflight.Check) string {
	required, recommended := preflight.Failed(checks)
	switch {
	case required > 0:
		return fmt.Sprintf("sandbox run cannot work here: %s, %s", plural(required, "problem"), plural(recommended, "warning"))
	case recommended > 0:
		return fmt.Sprintf("sandbox run works here; %s: what they name is unavailable until fixed", plural(recommended, "warning"))
	}
	return fmt.Sprintf("sandbox run works here; all %d checks passed", len(checks))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// doctorJSON is the --format json document. Its keys are stable.
type doctorJSON struct {
	// OK is false when a required check failed (exit status 1).
	OK       bool              `json:"ok"`
	Problems int               `json:"problems"`
	Warnings int               `json:"warnings"`
	Checks   []preflight.Check `json:"checks"`
}

func writeDoctorJSON(w io.Writer, checks []preflight.Check) error {
	required, recommended := preflight.Failed(checks)
	doc := doctorJSON{OK: required == 0, Problems: required, Warnings: recommended, Checks: make([]preflight.Check, len(checks))}
	for i, c := range checks {
		if c.Fixes == nil {
			c.Fixes = []string{}
		}
		doc.Checks[i] = c
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
