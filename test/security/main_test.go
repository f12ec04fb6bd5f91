package security

// The helpers here are a trimmed copy of test/integration's (test packages
// cannot share helpers); keep the two in step.

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

// defaultTimeout bounds every run of the binary: no test may hang, even
// when the sandbox under test does.
const defaultTimeout = 30 * time.Second

var (
	// sandboxBin is the absolute path of the binary under test.
	sandboxBin string
	// tryBin is the attacker built from testdata/try, or "" with tryErr
	// saying why it could not be built.
	tryBin string
	tryErr error
	// strict turns a missing prerequisite into a failure (CI sets it).
	strict = os.Getenv("SANDBOX_TEST_STRICT") == "1"
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "sandbox-sectest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "security: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if bin := os.Getenv("SANDBOX_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "security: SANDBOX_BIN: %v\n", err)
			return 1
		}
		sandboxBin = abs
	} else {
		sandboxBin = filepath.Join(tmp, "sandbox")
		if out, err := goBuild(".", sandboxBin, "../../cmd/sandbox"); err != nil {
			fmt.Fprintf(os.Stderr, "security: building the binary (set SANDBOX_BIN to use a built one): %v\n%s", err, out)
			return 1
		}
	}

	helper := filepath.Join(tmp, "try")
	if out, err := goBuild("testdata/try", helper, "."); err != nil {
		tryErr = fmt.Errorf("building testdata/try: %v: %s", err, bytes.TrimSpace(out))
	} else {
		tryBin = helper
	}
	return m.Run()
}

// goBuild runs a static `go build` in dir.
func goBuild(dir, out, pkg string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// requireX stops a test whose prerequisite is missing: a skip that names
// the reason, or, under SANDBOX_TEST_STRICT=1, a failure.
func requireX(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if strict {
		t.Fatalf("prerequisite missing (SANDBOX_TEST_STRICT=1): %s", msg)
	}
	t.Skipf("prerequisite missing: %s (set SANDBOX_TEST_STRICT=1 to make this a failure)", msg)
}

// requireUnprivileged: the attacks are an ordinary user's; as root they
// would test something else.
func requireUnprivileged(t *testing.T) {
	t.Helper()
	requireX(t, os.Geteuid() != 0, "running as root; run the suite as an unprivileged user with subordinate ids (CI: sandbox-test)")
}

// requireTool returns the path of a host tool the test drives.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	requireX(t, err == nil, "%s not found on PATH (%v)", name, err)
	return p
}

// tryIn copies the attacker into dir (a work directory the sandbox binds
// read-write at the same path) and returns its path there.
func tryIn(t *testing.T, dir string) string {
	t.Helper()
	requireX(t, tryBin != "", "attacker helper: %v", tryErr)
	p := filepath.Join(dir, "try")
	copyFile(t, tryBin, p, 0o755)
	return p
}

// runOpts says how to start the binary; the zero value is a plain run from
// a fresh working directory with the test's environment and no input.
type runOpts struct {
	dir     string        // working directory; "" means a fresh t.TempDir()
	env     []string      // environment of the CLI; nil means os.Environ()
	timeout time.Duration // 0 means defaultTimeout
	extra   []*os.File    // ExtraFiles: fd 3 and up, not close-on-exec
}

// result is what a user sees of one run.
type result struct {
	stdout, stderr string
	code           int // exit code; -1 when the CLI itself died of a signal
}

func (r result) String() string {
	return fmt.Sprintf("exit code %d\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runSandbox runs the binary with args and waits for it, bounded by a
// timeout that fails the test.
func runSandbox(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	return runBounded(t, o, sandboxBin, args...)
}

// runBounded runs any program the way runSandbox runs the binary.
func runBounded(t *testing.T, o runOpts, prog string, args ...string) result {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	r, err := runProg(o, prog, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	return r
}

// runProg is runBounded without a *testing.T, for goroutines; the error
// says the run timed out or could not start.
func runProg(o runOpts, prog string, args ...string) (result, error) {
	if o.timeout == 0 {
		o.timeout = defaultTimeout
	}
	if o.dir == "" {
		return result{code: -1}, errors.New("runProg: no working directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = o.dir
	cmd.Env = o.env
	cmd.ExtraFiles = o.extra
	// Processes that escape the sandbox and hold our pipes must not hang
	// the test either.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: -1}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("%s %q did not finish within %v (killed)", filepath.Base(prog), args, o.timeout)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return r, fmt.Errorf("running %s %q: %v", filepath.Base(prog), args, err)
	}
	return r, nil
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lines splits output into trimmed, non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// wantExit fails the test unless the run ended with code.
func wantExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit code %d, got:\n%s", code, r)
	}
}

// wantSandboxError checks the shape of an error that sandbox itself
// reports: exit code 125 and a message starting "sandbox: " that contains
// every word (case-insensitively).
func wantSandboxError(t *testing.T, r result, words ...string) {
	t.Helper()
	if r.code != 125 {
		t.Errorf("want exit code 125 (sandbox failed before the command ran), got %d", r.code)
	}
	if !strings.HasPrefix(r.stderr, "sandbox: ") {
		t.Errorf("want stderr to start with %q", "sandbox: ")
	}
	low := strings.ToLower(r.stderr)
	for _, w := range words {
		if !strings.Contains(low, strings.ToLower(w)) {
			t.Errorf("want the message to mention %q", w)
		}
	}
	if t.Failed() {
		t.Fatalf("%s", r)
	}
}

// tryResults parses the "TOKEN RESULT [DETAIL]" lines of try into
// TOKEN -> "RESULT" and TOKEN -> "DETAIL".
func tryResults(out string) (res, detail map[string]string) {
	res, detail = map[string]string{}, map[string]string{}
	for _, l := range lines(out) {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 {
			continue
		}
		res[f[0]] = f[1]
		if len(f) == 3 {
			detail[f[0]] = f[2]
		}
	}
	return res, detail
}

// ptyRun runs shellCmd under script(1), so that it (and the binary it
// starts) has a real terminal as its controlling tty. script's own stdin
// stays open (no EOF) until it exits. The output is the terminal's, with
// "\r\n" turned into "\n".
func ptyRun(t *testing.T, dir, shellCmd string) result {
	t.Helper()
	scriptBin := requireTool(t, "script")
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, scriptBin, "-qec", shellCmd, "/dev/null")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SHELL=/bin/sh", "TERM=xterm")
	cmd.WaitDelay = 5 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd.Stdin = pr
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting script: %v", err)
	}
	pr.Close()
	err = cmd.Wait()
	r := result{stdout: strings.ReplaceAll(out.String(), "\r\n", "\n"), code: -1}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("script -c %q did not finish within %v (killed)\n%s", shellCmd, defaultTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("script: %v\n%s", err, r)
	}
	return r
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
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
