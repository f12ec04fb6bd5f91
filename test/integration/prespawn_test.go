package integration

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/internal/e2e"
)

// socketDir is where this suite's runs keep their pre-spawner sockets.
func socketDir() string { return filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "sandbox") }

// waitPrespawned waits (bounded) until a pre-spawner listens in the
// suite's socket directory.
func waitPrespawned(t *testing.T, wd string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		socks, _ := filepath.Glob(filepath.Join(socketDir(), "warm-*.sock"))
		if len(socks) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pre-spawner socket appeared in %s", socketDir())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runMode is how a --debug run started: "taken" or "direct".
func runMode(t *testing.T, r e2e.Result) string {
	t.Helper()
	for _, l := range e2e.Lines(r.Stderr) {
		if strings.Contains(l, "msg=prespawn") {
			if strings.Contains(l, "mode=taken") {
				return "taken"
			}
			return "direct"
		}
	}
	t.Fatalf("no prespawn line in --debug output:\n%s", r)
	return ""
}

// A run after a first one takes a pre-spawned sandbox, and what runs in
// it cannot tell: fresh namespaces for every run, the caller's ids and
// directory, the same exit code, only the sandbox's processes.
func TestPrespawnedRunIsAFreshSandbox(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	wd := t.TempDir()
	o := e2e.RunOpts{Dir: wd}
	// Namespace inode numbers are reused once a namespace is gone, so
	// freshness shows in state: each run leaves a file in its /tmp for
	// the next run to (not) find.
	script := `test -e /tmp/left-by-a-run && echo found || echo clean; touch /tmp/left-by-a-run; readlink /proc/self/ns/user; id -u; pwd; ps -e -o pid= | wc -l; touch made-inside; exit 7`

	first := e2e.RunSandbox(t, o, "run", "--debug", "--", "sh", "-c", script)
	e2e.WantExit(t, first, 7)
	waitPrespawned(t, wd)
	second := e2e.RunSandbox(t, o, "run", "--debug", "--", "sh", "-c", script)
	e2e.WantExit(t, second, 7)
	third := e2e.RunSandbox(t, o, "run", "--debug", "--", "sh", "-c", script)
	e2e.WantExit(t, third, 7)
	if m := runMode(t, second); m != "taken" {
		t.Fatalf("the second run started %s, want taken from the pre-spawner\n%s", m, second)
	}
	if m := runMode(t, third); m != "taken" {
		t.Fatalf("the third run started %s\n%s", m, third)
	}
	a, b, c := e2e.Lines(first.Stdout), e2e.Lines(second.Stdout), e2e.Lines(third.Stdout)
	if len(a) != 5 || len(b) != 5 || len(c) != 5 {
		t.Fatalf("unexpected output:\n%s\n%s\n%s", first, second, third)
	}
	for i, out := range [][]string{a, b, c} {
		if out[0] != "clean" {
			t.Errorf("run %d found the file an earlier run left in its /tmp", i+1)
		}
	}
	host, _ := os.Readlink("/proc/self/ns/user")
	if b[1] == host {
		t.Errorf("the taken sandbox runs in the caller's user namespace %s", host)
	}
	for i, want := range []string{strconv.Itoa(os.Getuid()), wd} {
		if b[2+i] != want {
			t.Errorf("line %d in a taken sandbox = %q, want %q", 3+i, b[2+i], want)
		}
	}
	// sh, ps and wc, plus init: nothing of the pre-spawner is visible.
	if b[4] != a[4] {
		t.Errorf("a taken sandbox sees %s processes, a direct one %s", b[4], a[4])
	}
	fi, err := os.Stat(filepath.Join(wd, "made-inside"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() {
		t.Errorf("a file made in a taken sandbox belongs to uid %d", st.Uid)
	}
}

// Guards concurrent runs: a run that keeps its sandbox does not make the
// next one wait for it; that one starts at once, direct while the
// pre-spawner has nothing ready.
func TestPrespawnServesConcurrentRuns(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	wd := t.TempDir()
	o := e2e.RunOpts{Dir: wd}
	e2e.WantExit(t, e2e.RunSandbox(t, o, "run", "true"), 0)
	waitPrespawned(t, wd)
	long := make(chan e2e.Result, 1)
	go func() {
		r, _ := e2e.RunProg(o, e2e.Bin, "run", "--debug", "--", "sh", "-c", "touch long-started; sleep 6")
		long <- r
	}()
	// Once the long run has taken the pre-spawned sandbox (its command
	// runs, in the shared work directory), start another.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(wd, "long-started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the long run never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	r := e2e.RunSandbox(t, o, "run", "--debug", "--", "true")
	took := time.Since(start)
	e2e.WantExit(t, r, 0)
	// Not a speed goal: 1.5 s is far more than a run takes and less than
	// the 2 s a held pre-spawner would make it wait.
	if took > 1500*time.Millisecond {
		t.Errorf("a run beside a long one took %s: it waited for the pre-spawner\n%s", took, r)
	}
	if m := runMode(t, r); m != "direct" || !strings.Contains(r.Stderr, "taken by a run still going on") {
		t.Errorf("a run beside a long one: %s\n%s", m, r)
	}
	lr := <-long
	e2e.WantExit(t, lr, 0)
	if runMode(t, lr) != "taken" {
		t.Errorf("the long run started direct:\n%s", lr)
	}
}

// stdin, stdout and stderr of the CLI are the command's, also when the
// sandbox was spawned by another process.
func TestPrespawnedRunGetsTheCallersStreams(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	wd := t.TempDir()
	e2e.WantExit(t, e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "true"), 0)
	waitPrespawned(t, wd)
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd, Stdin: strings.NewReader("from the caller\n")},
		"run", "--debug", "-i", "--", "sh", "-c", "cat; echo to-stderr >&2")
	e2e.WantExit(t, r, 0)
	if runMode(t, r) != "taken" {
		t.Fatalf("not taken:\n%s", r)
	}
	if r.Stdout != "from the caller\n" || !strings.Contains(r.Stderr, "to-stderr") {
		t.Errorf("streams of a taken sandbox:\n%s", r)
	}
}

// Guards the pre-spawner against serving a run in another context: a run
// with a different rlimit (here RLIMIT_CORE via prlimit) would get a
// sandbox with the pre-spawner's limits, so it must not take one.
func TestPrespawnNotTakenInAnotherContext(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	prlimit := e2e.RequireTool(t, "prlimit")
	wd := t.TempDir()
	o := e2e.RunOpts{Dir: wd}
	e2e.WantExit(t, e2e.RunSandbox(t, o, "run", "true"), 0)
	waitPrespawned(t, wd)
	r := e2e.RunBounded(t, o, prlimit, "--core=12345:12345", e2e.Bin, "run", "--debug", "--", "sh", "-c", "grep 'core file' /proc/self/limits")
	e2e.WantExit(t, r, 0)
	if m := runMode(t, r); m != "direct" {
		t.Errorf("a run with other rlimits started %s\n%s", m, r)
	}
	if f := strings.Fields(r.Stdout); len(f) < 7 || f[4] != "12345" || f[5] != "12345" {
		t.Errorf("the command's core limit: %q, want 12345 12345 bytes", r.Stdout)
	}
}

// Guards against a pre-spawner handing a sandbox to any process that can
// reach its socket: a peer that is not a sandbox CLI in the same context
// (here this test binary, another executable) is refused, and the
// pre-spawned sandbox stays for the next real run.
func TestPrespawnerRefusesOtherPeers(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	wd := t.TempDir()
	e2e.WantExit(t, e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "true"), 0)
	waitPrespawned(t, wd)
	socks, _ := filepath.Glob(filepath.Join(socketDir(), "warm-*.sock"))
	asked := 0
	for _, sock := range socks {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		tv := unix.NsecToTimeval(int64(5 * time.Second))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
			unix.Close(fd)
			continue // a pre-spawner that just went idle
		}
		buf, oob := make([]byte, 4096), make([]byte, 128)
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("%s: %v", sock, err)
		}
		asked++
		if oobn != 0 || !strings.HasPrefix(string(buf[:n]), "refused\n") {
			t.Errorf("%s answered a foreign peer with %q and %d bytes of fds", sock, buf[:n], oobn)
		}
	}
	if asked == 0 {
		t.Fatalf("no pre-spawner answered in %s (sockets %v)", socketDir(), socks)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--debug", "--", "true")
	e2e.WantExit(t, r, 0)
	if runMode(t, r) != "taken" {
		t.Errorf("after refusing a peer the pre-spawner did not serve a real run:\n%s", r)
	}
}

// Guards the socket directory: one that others may enter, or a symlink in
// its place, is not used (and nothing is created through the symlink);
// the run goes direct and says why under --debug.
func TestPrespawnUnsafeDirectoryIsNotUsed(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	for _, tc := range []struct {
		name string
		make func(t *testing.T, run string) string // returns a dir that must stay empty
		want string
	}{
		{"mode 0755", func(t *testing.T, run string) string {
			d := filepath.Join(run, "sandbox")
			os.Mkdir(d, 0o755)
			os.Chmod(d, 0o755)
			return d
		}, "mode 0755"},
		{"symlink", func(t *testing.T, run string) string {
			target := t.TempDir()
			os.Chmod(target, 0o700)
			if err := os.Symlink(target, filepath.Join(run, "sandbox")); err != nil {
				t.Fatal(err)
			}
			return target
		}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := t.TempDir()
			empty := tc.make(t, run)
			o := e2e.RunOpts{Env: e2e.EnvWith("XDG_RUNTIME_DIR=" + run)}
			for range 2 {
				r := e2e.RunSandbox(t, o, "run", "--debug", "--", "true")
				e2e.WantExit(t, r, 0)
				if runMode(t, r) != "direct" || !strings.Contains(r.Stderr, tc.want) {
					t.Errorf("want a direct run saying %q:\n%s", tc.want, r)
				}
			}
			if ents, _ := os.ReadDir(empty); len(ents) != 0 {
				t.Errorf("%s got %d entries", empty, len(ents))
			}
			if pids := e2e.Prespawners(run); len(pids) != 0 {
				t.Errorf("pre-spawners started for an unsafe directory: %v", pids)
			}
		})
	}
}

// --prespawn=off neither takes nor starts a pre-spawner; a short
// --prespawn ends the pre-spawner it starts after that long idle, leaving
// its directory empty.
func TestPrespawnOffAndIdleExit(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	run := t.TempDir()
	os.Chmod(run, 0o700)
	o := e2e.RunOpts{Env: e2e.EnvWith("XDG_RUNTIME_DIR=" + run)}
	r := e2e.RunSandbox(t, o, "run", "--debug", "--prespawn=off", "--", "true")
	e2e.WantExit(t, r, 0)
	if runMode(t, r) != "direct" || len(e2e.Prespawners(run)) != 0 {
		t.Fatalf("--prespawn=off: %v\n%s", e2e.Prespawners(run), r)
	}
	if _, err := os.Stat(filepath.Join(run, "sandbox")); err == nil {
		t.Error("--prespawn=off made a socket directory")
	}

	r = e2e.RunSandbox(t, o, "run", "--prespawn=1s", "--", "true")
	e2e.WantExit(t, r, 0)
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) == 0 && time.Now().Before(deadline) {
		pids = e2e.Prespawners(run)
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) != 1 {
		t.Fatalf("pre-spawners after a run: %v", pids)
	}
	// Its pre-spawned sandbox, once spawned.
	var inits []proc
	for len(inits) == 0 && time.Now().Before(deadline) {
		inits = initsOf(pids[0])
		time.Sleep(20 * time.Millisecond)
	}
	if len(inits) == 0 {
		t.Fatalf("the pre-spawner %d spawned no sandbox", pids[0])
	}
	deadline = time.Now().Add(10 * time.Second)
	for e2e.Running(pids[0]) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if e2e.Running(pids[0]) {
		t.Fatalf("the pre-spawner %d is still there 10 s after a 1 s idle limit", pids[0])
	}
	// Its sandbox went with it, and it took its socket along.
	socks, _ := filepath.Glob(filepath.Join(run, "sandbox", "warm-*.sock"))
	if len(socks) != 0 {
		t.Errorf("left behind: %v", socks)
	}
	for _, p := range inits {
		if alive(p) {
			t.Errorf("the idle pre-spawner's sandbox init %d outlived it", p.pid)
		}
	}
}

// initsOf lists the live `sandbox __init` children of pid.
func initsOf(pid int) []proc {
	var out []proc
	for _, p := range listProcs() {
		if p.ppid == pid && len(p.argv) > 1 && p.argv[1] == "__init" && alive(p) {
			out = append(out, p)
		}
	}
	return out
}

// waitBuiltAhead waits (bounded) until a pre-spawned sandbox of the suite
// has built a root ahead with dir bound in it: the init waits with that
// root attached on /proc of its own mount namespace.
func waitBuiltAhead(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, pid := range e2e.Prespawners(socketDir()) {
			for _, p := range initsOf(pid) {
				b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/mountinfo")
				for _, l := range e2e.Lines(string(b)) {
					if f := strings.Fields(l); len(f) > 4 && f[4] == "/proc"+dir {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pre-spawned sandbox built a root with %s ahead", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A pre-spawned sandbox builds the root of the run before it ahead, and a
// run takes that root only when its own spec would build the same one
// now. Guards against a stale bind: a work directory replaced by another
// at the same path (renamed away, or removed and made again, when its
// inode number may come back) gets a root of its own, and what the
// command writes lands in the directory the caller is in.
func TestPrespawnedRootBuiltAhead(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	base := t.TempDir()
	wd := filepath.Join(base, "work")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	e2e.WantExit(t, e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "true"), 0)
	waitPrespawned(t, wd)
	run := func(name string, wantPrebuilt bool) {
		t.Helper()
		r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--debug", "--", "sh", "-c", "echo "+name+" > "+name)
		e2e.WantExit(t, r, 0)
		if runMode(t, r) != "taken" {
			t.Fatalf("run %s was not taken from the pre-spawner:\n%s", name, r)
		}
		if got := strings.Contains(r.Stderr, "stage=child-prebuilt"); got != wantPrebuilt {
			t.Errorf("run %s: root built ahead %v, want %v\n%s", name, got, wantPrebuilt, r)
		}
		if b, err := os.ReadFile(filepath.Join(wd, name)); err != nil || string(b) != name+"\n" {
			t.Errorf("run %s: %q, %v in the work directory", name, b, err)
		}
	}
	replace := func(how func() error) {
		t.Helper()
		if err := how(); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(wd, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The pre-spawner learns the root from a run taken from it.
	waitPrespawned(t, wd)
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--", "true")
	e2e.WantExit(t, r, 0)
	waitBuiltAhead(t, wd)
	run("first", true)
	waitBuiltAhead(t, wd)
	replace(func() error { return os.Rename(wd, filepath.Join(base, "old")) })
	run("second", false)
	if _, err := os.Stat(filepath.Join(base, "old", "second")); err == nil {
		t.Error("a run after the work directory was renamed away wrote into the old one")
	}
	waitBuiltAhead(t, wd)
	run("third", true)
	waitBuiltAhead(t, wd)
	replace(func() error { return os.RemoveAll(wd) })
	run("fourth", false)
	waitBuiltAhead(t, wd)
	run("fifth", true)

	// A root that cannot be built ahead (a volume's source is gone by
	// then) leaves the next sandbox as it was, and the run builds its own.
	vol := filepath.Join(base, "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "-v", vol+":/vol", "-v", vol+"/f:/f", "--", "rm", "/vol/f")
	e2e.WantExit(t, r, 0)
	run("sixth", false)
}

// Guards the timer slack: the sandbox's own processes start with a coarse
// one, and the command must still get its caller's, direct and
// pre-spawned (a sleep would otherwise overshoot by milliseconds).
func TestCommandGetsCallersTimerSlack(t *testing.T) {
	e2e.RequireUnprivileged(t)
	// The CLI is forked from this thread and inherits its slack.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	const want = 123457
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, want, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	wd := t.TempDir()
	for _, c := range []struct{ name, prespawn string }{
		{"direct", "--prespawn=off"},
		{"first, starts a pre-spawner", "--prespawn=1m"},
		{"pre-spawned", "--prespawn=1m"},
	} {
		if c.name == "pre-spawned" {
			waitPrespawned(t, wd)
		}
		r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--debug", c.prespawn, "--", "cat", "/proc/self/timerslack_ns")
		e2e.WantExit(t, r, 0)
		if got := strings.TrimSpace(r.Stdout); got != strconv.Itoa(want) {
			t.Errorf("%s: the command's timer slack is %s ns, want the caller's %d\n%s", c.name, got, want, r)
		}
		if c.name == "pre-spawned" && !strings.Contains(r.Stderr, "mode=taken") {
			t.Errorf("pre-spawned: the run did not take a pre-spawned sandbox\n%s", r)
		}
	}
}
