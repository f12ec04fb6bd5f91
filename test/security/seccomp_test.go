package security

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// The contract of the default seccomp filter, by answer. try's table
// (testdata/try/main.go) gives each call arguments that change nothing
// when allowed, and notes the kernel's own answer to them.
var (
	// Every program needs these; ioctl stays usable for terminals (EBADF
	// here, because the fd is -1, not EPERM).
	seccompAllowed = map[string]string{
		"getpid": "OK", "uname": "OK", "clock_gettime": "OK", "openat": "OK",
		"fork": "OK", "personality-query": "OK", "personality-linux": "OK",
		"ioctl-tcgets": "EBADF",
	}
	// Kernel attack surface and ways around the sandbox's own mounts and
	// namespaces: refused with EPERM, so that programs that probe degrade
	// gracefully.
	seccompEPERM = []string{
		"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"open_by_handle_at", "mount", "umount2", "pivot_root",
		"fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr",
		"setns", "unshare-newuser", "unshare-newns", "clone-newns", "clone-newuser",
		"acct", "swapon", "swapoff", "reboot", "clock_settime", "settimeofday",
		"personality-addr-no-randomize",
		"ioctl-tiocsti", "ioctl-tiocsti-high", "ioctl-tioclinux", "ioctl-tioclinux-high",
	}
	// Unknown and future numbers (nr:400 lies in the unassigned gap
	// 335-423 of x86_64), and clone3, whose flags live in memory a filter
	// cannot read: ENOSYS, so that libc falls back to what the filter can
	// inspect.
	seccompENOSYS = []string{"clone3", "nr:400", "nr:1000"}
)

// Guards against escapes and kernel exploits through the system call
// interface (the bug classes behind CVE-2022-0185 fsconfig, CVE-2016-0728
// keyctl, CVE-2021-22555 via unshare, io_uring and eBPF exploits,
// CVE-2017-5226 TIOCSTI, and the flatpak high-bits ioctl bypass
// CVE-2019-10063): the default filter answers each dangerous call with its
// errno, while ordinary calls work.
func TestSeccompDefaultFilterDeniesDangerousSyscalls(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	try := tryIn(t, wd)
	tokens := slices.Sorted(maps.Keys(seccompAllowed))
	tokens = append(append(tokens, seccompEPERM...), seccompENOSYS...)

	// Control: what the kernel answers the same user without a filter.
	// Where it already says EPERM, the check below proves less.
	ctl := e2e.RunBounded(t, e2e.RunOpts{Dir: wd}, try, append([]string{"call"}, tokens...)...)
	ctlRes, _ := tryResults(ctl.Stdout)
	var weak []string
	for _, tok := range seccompEPERM {
		if ctlRes[tok] == "EPERM" || ctlRes[tok] == "ENOSYS" {
			weak = append(weak, tok)
		}
	}
	t.Logf("control: the kernel itself answers EPERM (or the call is absent) for %v; for these the check cannot tell the filter from the kernel", weak)

	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, append([]string{"run", "--", "./try", "call"}, tokens...)...)
	e2e.WantExit(t, r, 0)
	res, _ := tryResults(r.Stdout)
	for tok, want := range seccompAllowed {
		if res[tok] != want {
			t.Errorf("%s: got %q inside, want %s (allowed)", tok, res[tok], want)
		}
	}
	for _, tok := range seccompEPERM {
		if res[tok] != "EPERM" {
			t.Errorf("%s: got %q inside, want EPERM (kernel without filter: %s)", tok, res[tok], ctlRes[tok])
		}
	}
	for _, tok := range seccompENOSYS {
		if res[tok] != "ENOSYS" {
			t.Errorf("%s: got %q inside, want ENOSYS (kernel without filter: %s)", tok, res[tok], ctlRes[tok])
		}
	}

	st := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--", "cat", "/proc/self/status")
	e2e.WantExit(t, st, 0)
	if got := statusField(st.Stdout, "Seccomp"); got != "2" {
		t.Errorf("Seccomp: %q in /proc/self/status, want 2 (filter mode)", got)
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards against the x32 bypass: x32 system calls use the x86_64 audit
// arch with bit 30 set in the number, so a filter that checks only the
// arch and compares numbers lets "x32 getpid" (and x32 mount) through.
func TestSeccompDeniesX32ABI(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	try := tryIn(t, wd)
	ctl := e2e.RunBounded(t, e2e.RunOpts{Dir: wd}, try, "call", "x32:39")
	if res, _ := tryResults(ctl.Stdout); res["x32:39"] == "ENOSYS" {
		t.Logf("control: this kernel has no x32 ABI (CONFIG_X86_X32_ABI unset): ENOSYS inside proves nothing about the filter")
	}
	// x32:165 is mount through x32.
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--", "./try", "call", "x32:39", "x32:165")
	res, _ := tryResults(r.Stdout)
	// A killing filter (SIGSYS, 128+31) denies as well as an errno.
	if r.Code == 128+31 {
		return
	}
	e2e.WantExit(t, r, 0)
	for _, tok := range []string{"x32:39", "x32:165"} {
		if res[tok] != "EPERM" && res[tok] != "ENOSYS" {
			t.Errorf("%s: got %q inside, want it denied (EPERM or ENOSYS)\n%s", tok, res[tok], r)
		}
	}
}

// Guards the opt-out: --security-opt seccomp=unconfined removes the
// filter, and says so, so that nobody runs unconfined without knowing.
func TestSeccompUnconfinedWarnsAndRemovesFilter(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	tryIn(t, wd)
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--security-opt", "seccomp=unconfined", "--",
		"sh", "-c", `./try call mount clone3 keyctl; grep '^Seccomp:' /proc/self/status`)
	e2e.WantExit(t, r, 0)
	if !strings.Contains(strings.ToLower(r.Stderr), "seccomp") {
		t.Errorf("want a warning naming seccomp on stderr")
	}
	res, _ := tryResults(r.Stdout)
	// Without a filter the kernel answers these arguments itself.
	for tok, want := range map[string]string{"mount": "EFAULT", "clone3": "EINVAL", "keyctl": "OK"} {
		if res[tok] != want {
			t.Errorf("%s: got %q unconfined, want the kernel's own %s", tok, res[tok], want)
		}
	}
	if got := statusField(r.Stdout, "Seccomp"); got != "0" {
		t.Errorf("Seccomp: %q unconfined, want 0", got)
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards --security-opt seccomp=FILE: an OCI profile from a file is the
// filter that runs (and a broken one fails the run, it is never ignored).
func TestSeccompProfileFromFile(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	tryIn(t, wd)
	prof := filepath.Join(wd, "profile.json")
	const json = `{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
}`
	if err := os.WriteFile(prof, []byte(json), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--security-opt", "seccomp="+prof, "--", "./try", "call", "uname", "getpid", "mount")
	e2e.WantExit(t, r, 0)
	res, _ := tryResults(r.Stdout)
	if res["uname"] != "EPERM" {
		t.Errorf("uname: got %q, want EPERM from the profile's rule", res["uname"])
	}
	if res["getpid"] != "OK" {
		t.Errorf("getpid: got %q, want OK (the profile allows by default)", res["getpid"])
	}
	t.Logf("mount under a profile that allows it by default: %s", res["mount"])
	if t.Failed() {
		t.Logf("%s", r)
	}

	bad := filepath.Join(wd, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"defaultAction": `), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--security-opt", "seccomp="+bad, "--", "true")
	e2e.WantSandboxError(t, r, "seccomp")
	r = e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--security-opt", "seccomp="+filepath.Join(wd, "missing.json"), "--", "true")
	e2e.WantSandboxError(t, r, "missing.json")
}

// statusField returns the value of "Name:\tvalue" in /proc/PID/status
// text, or "" when absent.
func statusField(status, name string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
