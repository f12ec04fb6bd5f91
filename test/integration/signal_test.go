package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/e2e"
)

// Guards signal forwarding: signals sent to the CLI reach the command,
// which handles them and decides the exit code.
func TestSignalsAreForwarded(t *testing.T) {
	e2e.RequireUnprivileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), e2e.DefaultTimeout)
	defer cancel()
	script := `trap "echo got TERM; exit 0" TERM; trap "echo got INT" INT; trap "echo got USR1" USR1; trap "echo got HUP" HUP
echo ready
i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo gave-up; exit 9`
	cmd := exec.CommandContext(ctx, e2e.Bin, "run", "--", "sh", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ch := lineReader(out)
	var seen []string
	waitLine(t, ch, "ready", 15*time.Second, &seen)
	for _, s := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGUSR1, "got USR1"},
		{syscall.SIGHUP, "got HUP"},
		{syscall.SIGINT, "got INT"},
		{syscall.SIGTERM, "got TERM"},
	} {
		if err := cmd.Process.Signal(s.sig); err != nil {
			t.Fatalf("signalling the CLI with %v: %v", s.sig, err)
		}
		waitLine(t, ch, s.want, 5*time.Second, &seen)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the CLI did not exit after the command's TERM trap; output %q, stderr %q", seen, stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d (%v), want 0 from the command's TERM trap; output %q, stderr %q", code, err, seen, stderr.String())
	}
}

// Guards PID 1 reaping: orphans reparented to sandbox's init are reaped,
// no zombie is left in the sandbox.
func TestZombiesAreReaped(t *testing.T) {
	e2e.RequireUnprivileged(t)
	// Each inner sh leaves a sleep behind and exits, so the sleeps are
	// reparented to PID 1; they exit long before the stat files are read.
	script := `i=0; while [ $i -lt 5 ]; do sh -c "sleep 0.1 &"; i=$((i+1)); done
sleep 1
for f in /proc/[0-9]*/stat; do cat "$f" 2>/dev/null; done; exit 0`
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "sh", "-c", script)
	e2e.WantExit(t, r, 0)
	var n int
	for _, l := range e2e.Lines(r.Stdout) {
		p, ok := parseStat(l)
		if !ok {
			t.Fatalf("bad stat line %q\n%s", l, r)
		}
		n++
		if p.state == 'Z' {
			t.Errorf("zombie left inside: %s", l)
		}
		if p.pid == 1 && (p.argv[0] == "sh" || p.argv[0] == "sleep") {
			t.Errorf("PID 1 is %q; want sandbox's own init, which reaps", p.argv[0])
		}
	}
	if n < 2 {
		t.Errorf("read only %d processes inside\n%s", n, r)
	}
}

// Guards the end of a run: when sandbox run returns, nothing the command
// left behind runs any more, even a process that ignores the signals a
// shell's end sends. Here one keeps appending to a file in the work
// directory; its size must not change once the CLI has returned. Both
// ways a run starts.
func TestNothingRunsAfterTheRun(t *testing.T) {
	e2e.RequireUnprivileged(t)
	for _, prespawn := range []string{"--prespawn=off", "--prespawn=1m"} {
		t.Run(prespawn, func(t *testing.T) {
			wd := t.TempDir()
			if prespawn != "--prespawn=off" {
				// The first run starts a pre-spawner; the one under
				// test takes from it.
				e2e.WantExit(t, e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--", "true"), 0)
				waitPrespawned(t, wd)
			}
			script := `(trap "" TERM HUP INT; while :; do echo x >> out; done) &
while [ ! -s out ]; do :; done; exit 0`
			r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", prespawn, "--", "sh", "-c", script)
			e2e.WantExit(t, r, 0)
			out := filepath.Join(wd, "out")
			st, err := os.Stat(out)
			if err != nil {
				t.Fatalf("the command's writer never wrote: %v\n%s", err, r)
			}
			time.Sleep(300 * time.Millisecond)
			st2, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st2.Size() != st.Size() {
				t.Errorf("%s grew from %d to %d bytes after sandbox run returned: a process of the sandbox still ran", out, st.Size(), st2.Size())
			}
		})
	}
}

// Guards teardown when the CLI itself is killed with SIGKILL: every
// process of the sandbox dies, and no temp dir, runtime dir entry or mount
// is left on the host. Both ways a run starts: cloned by the CLI itself,
// whose parent-death signal ends it, and taken from a pre-spawner, where
// the end of the CLI's sync socket does.
func TestKillDashNineLeavesNothing(t *testing.T) {
	e2e.RequireUnprivileged(t)
	t.Run("direct", func(t *testing.T) { killDashNine(t, "--prespawn=off") })
	t.Run("prespawned", func(t *testing.T) {
		wd := t.TempDir()
		// The first run starts a pre-spawner; the one under test takes
		// from it.
		r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--debug", "--", "true")
		e2e.WantExit(t, r, 0)
		waitPrespawned(t, wd)
		killDashNine(t, "--prespawn=1m")
	})
}

func killDashNine(t *testing.T, prespawn string) {
	wd := t.TempDir()
	// The CLI gets a TMPDIR of its own, which must stay empty; the shared
	// temp dir is compared too, for an implementation that ignores TMPDIR
	// (other users of the machine may add to it at the same time).
	privateTmp := t.TempDir()
	tmpBefore := dirNames(t, os.TempDir())
	runtimeDir := os.Getenv("XDG_RUNTIME_DIR")
	var runtimeBefore []string
	if runtimeDir != "" {
		runtimeBefore = dirNames(t, runtimeDir)
	} else {
		t.Logf("XDG_RUNTIME_DIR is not set; checking %s only", os.TempDir())
	}
	mountsBefore := mountPoints(t)

	ctx, cancel := context.WithTimeout(context.Background(), e2e.DefaultTimeout)
	defer cancel()
	// 31.337 is a marker no other sleep on the machine uses.
	cmd := exec.CommandContext(ctx, e2e.Bin, "run", "--debug", prespawn, "--", "sleep", "31.337")
	cmd.Dir = wd
	cmd.Env = e2e.EnvWith("TMPDIR=" + privateTmp)
	cmd.WaitDelay = 5 * time.Second
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The sandbox: what runs below the CLI, and the marker with its
	// parent, the sandbox's init, which a pre-spawner cloned when the run
	// took a pre-spawned sandbox.
	var tree []proc
	deadline := time.Now().Add(15 * time.Second)
	for {
		procs := listProcs()
		tree = descendants(procs, cmd.Process.Pid)
		var marker *proc
		for _, p := range procs {
			if isMarker(p) && p.state != 'Z' {
				marker = &p
				break
			}
		}
		if marker != nil {
			if !slices.ContainsFunc(tree, isMarker) {
				tree = append(tree, *marker)
				if init, ok := procs[marker.ppid]; ok {
					tree = append(tree, init)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker sleep never started (CLI pid %d); output: %s", cmd.Process.Pid, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if sig := exitSignal(cmd.ProcessState); sig != syscall.SIGKILL {
		t.Fatalf("the CLI ended with %v, not by our SIGKILL", cmd.ProcessState)
	}
	wantMode := "mode=taken"
	if prespawn == "--prespawn=off" {
		wantMode = "mode=direct"
	}
	if !strings.Contains(out.String(), wantMode) {
		t.Errorf("the run did not start as intended (%s): %s", wantMode, out.String())
	}

	// Teardown after the kill is the kernel's (PID 1 of the namespace
	// dies, then everything in it), so it may take a moment.
	var left []proc
	deadline = time.Now().Add(5 * time.Second)
	for {
		left = left[:0]
		for _, p := range tree[1:] {
			if alive(p) {
				left = append(left, p)
			}
		}
		for _, p := range listProcs() {
			if isMarker(p) && p.state != 'Z' && !slices.ContainsFunc(left, func(q proc) bool { return q.pid == p.pid }) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range left {
		t.Errorf("process %d %q outlived the killed CLI", p.pid, p.argv)
	}

	if left := dirNames(t, privateTmp); len(left) > 0 {
		t.Errorf("left in the CLI's TMPDIR: %q", left)
	}
	if added := newNames(tmpBefore, dirNames(t, os.TempDir())); len(added) > 0 {
		t.Errorf("left in %s: %q", os.TempDir(), added)
	}
	if runtimeDir != "" {
		if added := newNames(runtimeBefore, dirNames(t, runtimeDir)); len(added) > 0 {
			t.Errorf("left in %s: %q", runtimeDir, added)
		}
	}
	if added := newNames(mountsBefore, mountPoints(t)); len(added) > 0 {
		t.Errorf("mounts left in the caller's mount namespace: %q", added)
	}
}

// isMarker reports whether p is the `sleep 31.337` of the kill test.
func isMarker(p proc) bool {
	return len(p.argv) == 2 && filepath.Base(p.argv[0]) == "sleep" && p.argv[1] == "31.337"
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// mountPoints lists the mount points of the test's own mount namespace,
// where a FUSE helper started through fusermount would leave its mount.
func mountPoints(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range e2e.Lines(string(b)) {
		if f := strings.Fields(l); len(f) > 4 {
			out = append(out, f[4])
		}
	}
	return out
}

func newNames(before, after []string) []string {
	var out []string
	for _, n := range after {
		if !slices.Contains(before, n) {
			out = append(out, n)
		}
	}
	return out
}
