package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// defaultTimeout bounds every run of the binary: no test may hang, even
// when the sandbox under test does.
const defaultTimeout = 30 * time.Second

var (
	// sandboxBin is the absolute path of the binary under test.
	sandboxBin string
	// tiocstiBin is the helper built from testdata/tiocsti, or "" with
	// tiocstiErr saying why it could not be built.
	tiocstiBin string
	tiocstiErr error
	// strict turns a missing prerequisite into a failure (CI sets it).
	strict = os.Getenv("SANDBOX_TEST_STRICT") == "1"
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "sandbox-itest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if bin := os.Getenv("SANDBOX_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: SANDBOX_BIN: %v\n", err)
			return 1
		}
		sandboxBin = abs
	} else {
		sandboxBin = filepath.Join(tmp, "sandbox")
		if out, err := goBuild(".", sandboxBin, "../../cmd/sandbox"); err != nil {
			fmt.Fprintf(os.Stderr, "integration: building the binary (set SANDBOX_BIN to use a built one): %v\n%s", err, out)
			return 1
		}
	}

	// The helper is its own module (testdata/tiocsti/go.mod), so building
	// it needs only the standard library, also as a user without the main
	// module's cache.
	helper := filepath.Join(tmp, "tiocsti")
	if out, err := goBuild("testdata/tiocsti", helper, "."); err != nil {
		tiocstiErr = fmt.Errorf("building testdata/tiocsti: %v: %s", err, bytes.TrimSpace(out))
	} else {
		tiocstiBin = helper
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
// the reason, or, under SANDBOX_TEST_STRICT=1, a failure. Skips never stay
// quiet on CI.
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

// requireUnprivileged: the namespace tests are about what an ordinary user
// gets; as root they would test something else.
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

// idRange is one line of /etc/subuid or /etc/subgid.
type idRange struct{ start, count uint32 }

// requireSubIDs returns the caller's first subordinate uid and gid ranges
// and checks the setuid helpers that use them are installed.
func requireSubIDs(t *testing.T) (uids, gids idRange) {
	t.Helper()
	requireTool(t, "newuidmap")
	requireTool(t, "newgidmap")
	name := userName()
	uids, uerr := subRange("/etc/subuid", name, os.Getuid())
	requireX(t, uerr == nil, "subordinate uids for %q (uid %d): %v", name, os.Getuid(), uerr)
	gids, gerr := subRange("/etc/subgid", name, os.Getuid())
	requireX(t, gerr == nil, "subordinate gids for %q (uid %d): %v", name, os.Getuid(), gerr)
	return uids, gids
}

// userName finds the caller's login name in /etc/passwd, else $USER.
func userName() string {
	uid := strconv.Itoa(os.Getuid())
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) > 2 && f[2] == uid {
				return f[0]
			}
		}
	}
	return os.Getenv("USER")
}

// subRange reads the first range of a user (by name or uid) from a
// subordinate id file.
func subRange(file, name string, uid int) (idRange, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return idRange{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			continue
		}
		return idRange{uint32(start), uint32(count)}, nil
	}
	return idRange{}, fmt.Errorf("no range in %s", file)
}

// runOpts says how to start the binary; the zero value is a plain run from
// a fresh working directory with the test's environment and no input.
type runOpts struct {
	dir     string        // working directory; "" means a fresh t.TempDir()
	env     []string      // environment of the CLI; nil means os.Environ()
	stdin   io.Reader     // nil means /dev/null
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
	if o.timeout == 0 {
		o.timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = o.dir
	cmd.Env = o.env
	cmd.Stdin = o.stdin
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
		t.Fatalf("%s %q did not finish within %v (killed)\n%s", filepath.Base(prog), args, o.timeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running %s %q: %v\n%s", filepath.Base(prog), args, err, r)
	}
	return r
}

// envWith returns os.Environ() with the given NAME=VALUE pairs set,
// replacing earlier values.
func envWith(kv ...string) []string {
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

// noHelpersEnv hides newuidmap/newgidmap from the binary (it looks them up
// through $PATH): PATH is an empty directory, so commands must be given by
// absolute path.
func noHelpersEnv(t *testing.T) []string {
	t.Helper()
	return envWith("PATH=" + t.TempDir())
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

// wantFixLine checks that an error message tells the user how to fix it.
func wantFixLine(t *testing.T, r result) {
	t.Helper()
	if !strings.Contains(r.stderr, "\n  fix: ") {
		t.Fatalf("want a %q line in the message:\n%s", "  fix: ", r)
	}
}

// ptyRun runs shellCmd under script(1), so that it (and the binary it
// starts) has a real terminal as its controlling tty. input is typed into
// the terminal after start; script's own stdin stays open (no EOF) until it
// exits. The output is the terminal's, with "\r\n" turned into "\n".
func ptyRun(t *testing.T, dir, shellCmd, input string) result {
	t.Helper()
	scriptBin := requireTool(t, "script")
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, scriptBin, "-qec", shellCmd, "/dev/null")
	cmd.Dir = dir
	cmd.Env = envWith("SHELL=/bin/sh", "TERM=xterm")
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
	if input != "" {
		if _, err := io.WriteString(pw, input); err != nil {
			t.Errorf("typing into script: %v", err)
		}
	}
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

// proc is one host process as /proc shows it.
type proc struct {
	pid, ppid int
	state     byte
	start     uint64 // start time in clock ticks: tells a reused pid apart
	argv      []string
}

// listProcs reads every process in /proc. Processes that exit while it
// reads are left out.
func listProcs() map[int]proc {
	out := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out[pid] = p
		}
	}
	return out
}

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	p, ok := parseStat(string(b))
	if !ok {
		return proc{}, false
	}
	if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.argv = strings.Split(strings.TrimRight(string(c), "\x00"), "\x00")
	}
	return p, true
}

// parseStat parses one /proc/PID/stat line (proc(5)); the command name may
// hold spaces and parentheses, so fields are counted from the last ')'.
func parseStat(s string) (proc, bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 1 || end < open {
		return proc{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return proc{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64) // field 22: starttime
	return proc{pid: pid, ppid: ppid, state: f[0][0], start: start, argv: []string{s[open+1 : end]}}, true
}

// descendants returns root and every process below it.
func descendants(procs map[int]proc, root int) []proc {
	kids := map[int][]int{}
	for _, p := range procs {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if p, ok := procs[pid]; ok {
			out = append(out, p)
		}
		queue = append(queue, kids[pid]...)
	}
	return out
}

// alive reports whether p still runs (a zombie no longer runs; a reused
// pid is another process).
func alive(p proc) bool {
	now, ok := readProc(p.pid)
	return ok && now.start == p.start && now.state != 'Z'
}

// lineReader delivers the lines of r on a channel, for tests that must
// react to what the command prints while it runs.
func lineReader(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// waitLine reads lines until one equals want, failing after d.
func waitLine(t *testing.T, ch <-chan string, want string, d time.Duration, seen *[]string) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended before %q; saw %q", want, *seen)
			}
			*seen = append(*seen, l)
			if l == want {
				return
			}
		case <-timer.C:
			t.Fatalf("no %q within %v; saw %q", want, d, *seen)
		}
	}
}

// exitSignal is the signal that ended a process, or 0.
func exitSignal(ps *os.ProcessState) syscall.Signal {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}
