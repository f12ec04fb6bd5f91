package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/e2e"
)

// The harness (finding or building the binary, running it, checking a
// run) is sandbox/internal/e2e, shared with test/security; what only these
// tests need is here.

// tiocsti is the TIOCSTI helper, built from testdata/tiocsti (its own
// module, testdata/tiocsti/go.mod).
var tiocsti = &e2e.Helper{Dir: "testdata/tiocsti"}

func TestMain(m *testing.M) {
	os.Exit(e2e.Main(m, "integration", "sandbox-itest-", tiocsti))
}

// idRange is one line of /etc/subuid or /etc/subgid.
type idRange struct{ start, count uint32 }

// requireSubIDs returns the caller's first subordinate uid and gid ranges
// and checks the setuid helpers that use them are installed.
func requireSubIDs(t *testing.T) (uids, gids idRange) {
	t.Helper()
	e2e.RequireTool(t, "newuidmap")
	e2e.RequireTool(t, "newgidmap")
	name := userName()
	uids, uerr := subRange("/etc/subuid", name, os.Getuid())
	e2e.RequireX(t, uerr == nil, "subordinate uids for %q (uid %d): %v", name, os.Getuid(), uerr)
	gids, gerr := subRange("/etc/subgid", name, os.Getuid())
	e2e.RequireX(t, gerr == nil, "subordinate gids for %q (uid %d): %v", name, os.Getuid(), gerr)
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

// noHelpersEnv hides newuidmap/newgidmap from the binary (it looks them up
// through $PATH): PATH is an empty directory, so commands must be given by
// absolute path.
func noHelpersEnv(t *testing.T) []string {
	t.Helper()
	return e2e.EnvWith("PATH=" + t.TempDir())
}

// wantFixLine checks that an error message tells the user how to fix it.
func wantFixLine(t *testing.T, r e2e.Result) {
	t.Helper()
	if !strings.Contains(r.Stderr, "\n  fix: ") {
		t.Fatalf("want a %q line in the message:\n%s", "  fix: ", r)
	}
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
