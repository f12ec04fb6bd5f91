package prespawn

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/internal/e2e"
)

// TestMain doubles as a process to fingerprint from outside: the same
// executable, started in the context the test chooses.
func TestMain(m *testing.M) {
	if os.Getenv("PRESPAWN_TEST_SLEEPER") == "1" {
		fmt.Println("ready")
		time.Sleep(30 * time.Second)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sleeper starts this test binary through wrap (e.g. "nice -n 5") and
// returns its pid once it runs our executable.
func sleeper(t *testing.T, wrap ...string) int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(wrap, self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PRESPAWN_TEST_SLEEPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %q: %v", argv, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatalf("sleeper: %v", err)
	}
	return cmd.Process.Pid
}

func TestFingerprintStable(t *testing.T) {
	a, err := Fingerprint("/proc/self", []string{"--caps=21,8"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fingerprint(fmt.Sprintf("/proc/%d", os.Getpid()), []string{"--caps=21,8"})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("/proc/self and /proc/PID of the same process differ: %s, %s", a, b)
	}
	c, _ := Fingerprint("/proc/self", []string{"--caps=21,8,12"})
	if c == a {
		t.Error("a different spawn configuration gave the same fingerprint")
	}
}

// Guards the handoff of a sandbox to a process that would not get the same
// one by cloning it itself: a process started in the same context as ours
// matches; one that differs in a single inherited property does not.
func TestFingerprintSeesContext(t *testing.T) {
	own, err := Fingerprint("/proc/self", nil)
	if err != nil {
		t.Fatal(err)
	}
	same := sleeper(t)
	if got, err := Fingerprint(fmt.Sprintf("/proc/%d", same), nil); err != nil || got != own {
		t.Fatalf("a child of ours in the same context: %s, %v; want %s", got, err, own)
	}
	tests := []struct {
		name string
		wrap []string
	}{
		{"nice value", []string{"nice", "-n", "7"}},
		{"rlimit", []string{"prlimit", "--core=4096:4096"}},
		{"no_new_privs", []string{"setpriv", "--no-new-privs"}},
		{"umask", []string{"sh", "-c", `umask 077; exec "$0"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e2e.RequireTool(t, tc.wrap[0])
			pid := sleeper(t, tc.wrap...)
			got, err := Fingerprint(fmt.Sprintf("/proc/%d", pid), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got == own {
				t.Errorf("a process with a different %s has our fingerprint", tc.name)
			}
		})
	}
}

func TestNiceOf(t *testing.T) {
	tests := []struct {
		stat, want string
		err        bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 -5 1 0", "-5", false},
		{"42 (a (weird) name) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 10 1 0", "10", false},
		{"42 (short) R 1 2", "", true},
		{"no parens", "", true},
	}
	for _, tc := range tests {
		got, err := niceOf([]byte(tc.stat))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("niceOf(%q) = %q, %v; want %q (error %v)", tc.stat, got, err, tc.want, tc.err)
		}
	}
}

// Guards the server against handing a sandbox to any peer: over a socket
// pair the peer is this process, which matches its own key and not another.
func TestPeerMatches(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	p, err := peerOf(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if p.pid != os.Getpid() || p.uid != os.Getuid() {
		t.Fatalf("peer = %+v, want pid %d uid %d", p, os.Getpid(), os.Getuid())
	}
	extra := []string{"--uidmap=0:1:1"}
	key, _ := Fingerprint("/proc/self", extra)
	if err := p.matches(key, extra); err != nil {
		t.Errorf("our own key: %v", err)
	}
	other, _ := Fingerprint("/proc/self", []string{"--uidmap=0:2:1"})
	if err := p.matches(other, extra); err == nil || !strings.Contains(err.Error(), "different context") {
		t.Errorf("another key: %v, want a refusal", err)
	}
}

func TestMountsHash(t *testing.T) {
	a, err := MountsHash("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MountsHash(fmt.Sprintf("/proc/%d", os.Getpid()))
	if a != b || len(a) != 32 {
		t.Errorf("MountsHash = %q and %q", a, b)
	}
}
