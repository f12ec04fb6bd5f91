package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RunOpts says how to start the binary; the zero value is a plain run from
// a fresh working directory with the test's environment and no input.
type RunOpts struct {
	Dir     string        // working directory; "" means a fresh t.TempDir()
	Env     []string      // environment of the CLI; nil means os.Environ()
	Stdin   io.Reader     // nil means /dev/null
	Timeout time.Duration // 0 means DefaultTimeout
	Extra   []*os.File    // ExtraFiles: fd 3 and up, not close-on-exec
}

// Result is what a user sees of one run.
type Result struct {
	Stdout, Stderr string
	Code           int // exit code; -1 when the CLI itself died of a signal
}

func (r Result) String() string {
	return fmt.Sprintf("exit code %d\n--- stdout:\n%s\n--- stderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// RunSandbox runs the binary with args and waits for it, bounded by a
// timeout that fails the test.
func RunSandbox(t *testing.T, o RunOpts, args ...string) Result {
	t.Helper()
	return RunBounded(t, o, Bin, args...)
}

// RunBounded runs any program the way RunSandbox runs the binary.
func RunBounded(t *testing.T, o RunOpts, prog string, args ...string) Result {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	r, err := RunProg(o, prog, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	return r
}

// RunProg is RunBounded without a *testing.T, for goroutines; o.Dir must
// be set. The error says the run timed out or could not start.
func RunProg(o RunOpts, prog string, args ...string) (Result, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Dir == "" {
		return Result{Code: -1}, errors.New("RunProg: no working directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = o.Dir
	cmd.Env = o.Env
	cmd.Stdin = o.Stdin
	cmd.ExtraFiles = o.Extra
	// Processes that escape the sandbox and hold our pipes must not hang
	// the test either.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: -1}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("%s %q did not finish within %v (killed)", filepath.Base(prog), args, o.Timeout)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return r, fmt.Errorf("running %s %q: %v", filepath.Base(prog), args, err)
	}
	return r, nil
}

// EnvWith returns os.Environ() with the given NAME=VALUE pairs set,
// replacing earlier values.
func EnvWith(kv ...string) []string {
	return envOver(os.Environ(), kv...)
}

func envOver(base []string, kv ...string) []string {
	set := map[string]bool{}
	for _, p := range kv {
		set[strings.SplitN(p, "=", 2)[0]] = true
	}
	var out []string
	for _, p := range base {
		if !set[strings.SplitN(p, "=", 2)[0]] {
			out = append(out, p)
		}
	}
	return append(out, kv...)
}

// ShQuote quotes s for a POSIX shell.
func ShQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Lines splits output into trimmed, non-empty lines.
func Lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// WantExit fails the test unless the run ended with code.
func WantExit(t *testing.T, r Result, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("want exit code %d, got:\n%s", code, r)
	}
}

// WantSandboxError checks the shape of an error that sandbox itself
// reports: exit code 125 and a message starting "sandbox: " that contains
// every word (case-insensitively).
func WantSandboxError(t *testing.T, r Result, words ...string) {
	t.Helper()
	if r.Code != 125 {
		t.Errorf("want exit code 125 (sandbox failed before the command ran), got %d", r.Code)
	}
	if !strings.HasPrefix(r.Stderr, "sandbox: ") {
		t.Errorf("want stderr to start with %q", "sandbox: ")
	}
	low := strings.ToLower(r.Stderr)
	for _, w := range words {
		if !strings.Contains(low, strings.ToLower(w)) {
			t.Errorf("want the message to mention %q", w)
		}
	}
	if t.Failed() {
		t.Fatalf("%s", r)
	}
}

// CopyFile copies src to dst with exactly mode (a helper program into a
// test's work directory, say).
func CopyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	// OpenFile's mode passes through the umask; the tests need it exact.
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}
