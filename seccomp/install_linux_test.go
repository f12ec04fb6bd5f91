package seccomp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestInstallRefusesBadPrograms(t *testing.T) {
	if err := Install(nil); err == nil {
		t.Error("Install(nil) succeeded")
	}
}

// tryHelper is the test helper in testdata/try, built for this test.
type tryHelper struct {
	path string
}

// buildTry builds testdata/try: a Go program that loads a filter on its
// locked main thread and makes calls or runs programs from that thread.
func buildTry(t *testing.T) *tryHelper {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	out := filepath.Join(t.TempDir(), "try")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "./testdata/try")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/try: %v\n%s", err, b)
	}
	return &tryHelper{path: out}
}

// run runs the helper with stdin on /dev/null and returns its standard
// output and exit code (-1 when a signal ended it).
func (h *tryHelper) run(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("try %s: timed out after %v\n%s%s", strings.Join(args, " "), timeout, stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("try %s: %v", strings.Join(args, " "), err)
	}
	if stderr.Len() > 0 {
		t.Logf("try %s: stderr:\n%s", strings.Join(args, " "), lastLines(stderr.String(), 5))
	}
	return stdout.String(), cmd.ProcessState.ExitCode()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// calls runs "try [flags] call names..." and returns each name's result.
func (h *tryHelper) calls(t *testing.T, flags []string, names ...string) map[string]string {
	t.Helper()
	out, code := h.run(t, 30*time.Second, append(append(flags, "call"), names...)...)
	if code != 0 {
		t.Fatalf("try %v call: exit %d\n%s", flags, code, out)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		name, res, _ := strings.Cut(l, " ")
		got[name] = res
	}
	return got
}

// TestFilterInKernel loads compiled programs into the running kernel and
// makes real system calls under them, from the filtered thread and from
// programs it starts.
func TestFilterInKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("filters are compiled for x86_64; this is %s", runtime.GOARCH)
	}
	h := buildTry(t)
	if out, code := h.run(t, 30*time.Second, "call", "getpid"); code == 3 {
		msg := "seccomp filters are unavailable here (the kernel lacks CONFIG_SECCOMP_FILTER, or a container runtime's filter forbids seccomp(2))"
		if os.Getenv("SANDBOX_TEST_STRICT") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	} else if code != 0 {
		t.Fatalf("try call getpid: exit %d\n%s", code, out)
	}

	t.Run("calls", func(t *testing.T) {
		// want is the answer under the default filter; unfiltered, when
		// set, is the kernel's own answer, which shows the filter made
		// the difference.
		tests := []struct {
			name, want, unfiltered string
		}{
			{"getpid", "0", "0"},
			{"uname", "0", "0"},
			{"future", "ENOSYS", "ENOSYS"},
			{"ioctl_tcgets", "ENOTTY", "ENOTTY"},
			{"ioctl_tiocsti", "EPERM", "ENOTTY"},
			{"ioctl_tiocsti_hi", "EPERM", "ENOTTY"},
			{"ioctl_tioclinux", "EPERM", "ENOTTY"},
			{"clone3", "ENOSYS", "EINVAL"},
			{"clone_newuser", "EPERM", "EINVAL"},
			{"clone_newns", "EPERM", "EINVAL"},
			{"unshare_user", "EPERM", "EINVAL"},
			{"unshare_none", "0", "0"},
			{"setns", "EPERM", "EBADF"},
			{"personality_query", "0", "0"},
			{"personality_norandom", "EPERM", "0"},
			{"x32_getpid", "ENOSYS", ""},
			// The kernel's answers to these depend on privileges and
			// sysctls; the filter's do not.
			{"bpf", "EPERM", ""},
			{"keyctl", "EPERM", ""},
			{"perf_event_open", "EPERM", ""},
			{"userfaultfd", "EPERM", ""},
			{"io_uring_setup", "EPERM", ""},
			{"mount", "EPERM", ""},
			{"fsopen", "EPERM", ""},
			{"open_tree", "EPERM", ""},
			{"open_by_handle_at", "EPERM", ""},
			{"clock_settime", "EPERM", ""},
			{"settimeofday", "EPERM", ""},
		}
		var names []string
		for _, tt := range tests {
			names = append(names, tt.name)
		}
		filtered := h.calls(t, nil, names...)
		unfiltered := h.calls(t, []string{"-filter", "none"}, names...)
		for _, tt := range tests {
			if got := filtered[tt.name]; got != tt.want {
				t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
			}
			if got := unfiltered[tt.name]; tt.unfiltered != "" && got != tt.unfiltered {
				t.Errorf("%s without a filter: got %q, want %q", tt.name, got, tt.unfiltered)
			}
			t.Logf("%-22s filtered %-7s unfiltered %s", tt.name, filtered[tt.name], unfiltered[tt.name])
		}
		if unfiltered["x32_getpid"] == "0" {
			t.Log("this kernel runs x32 calls; the filter turned x32 getpid into ENOSYS")
		} else {
			t.Log("this kernel has no x32 ABI (CONFIG_X86_X32_ABI), so x32 getpid is ENOSYS either way; the emulator tests cover the filter's x32 check")
		}
	})

	t.Run("i386", func(t *testing.T) {
		switch got := h.calls(t, []string{"-filter", "none"}, "i386_getpid")["i386_getpid"]; got {
		case "0":
		case "FAULT":
			t.Skip("this kernel faults on int $0x80 from 64-bit processes (ia32 emulation off); the emulator tests cover the filter's i386 check")
		default:
			t.Fatalf("i386 getpid without a filter: got %q", got)
		}
		if got := h.calls(t, nil, "i386_getpid")["i386_getpid"]; got != "ENOSYS" {
			t.Errorf("i386 getpid: got %q, want ENOSYS", got)
		}
	})

	t.Run("nested user namespaces", func(t *testing.T) {
		got := h.calls(t, []string{"-filter", "nested"}, "unshare_user", "clone_newuser", "clone3", "setns", "mount", "getpid")
		// EINVAL is the kernel's own answer: the filter let them through.
		want := map[string]string{"unshare_user": "EINVAL", "clone_newuser": "EINVAL", "clone3": "ENOSYS", "setns": "EPERM", "mount": "EPERM", "getpid": "0"}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: got %q, want %q", name, got[name], w)
			}
		}
	})

	t.Run("long program", func(t *testing.T) {
		prog := mustCompile(t, chainProfile())
		file := filepath.Join(t.TempDir(), "prog")
		if err := os.WriteFile(file, Encode(prog), 0o600); err != nil {
			t.Fatal(err)
		}
		got := h.calls(t, []string{"-prog", file}, "getpid", "uname")
		if got["getpid"] != "ESRCH" || got["uname"] != "0" {
			t.Errorf("%d-instruction program: getpid %q (want ESRCH), uname %q (want 0)", len(prog), got["getpid"], got["uname"])
		}
	})

	// Programs started from the filtered thread inherit the filter on all
	// their threads.
	hostname := "/etc/hostname"
	if _, err := os.Stat(hostname); err != nil {
		hostname = "/etc/passwd"
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "Hello.java"), []byte(`public class Hello {
	public static void main(String[] args) throws Exception {
		Thread t = new Thread(() -> {});
		t.start();
		t.join();
		System.out.println("java " + new ProcessBuilder("true").start().waitFor());
	}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	programs := []struct {
		name  string
		needs []string
		argv  []string
		want  string
		slow  bool
	}{
		{
			name:  "shell",
			needs: []string{"/bin/sh"},
			argv:  []string{"/bin/sh", "-c", "ls / >/dev/null && cat " + hostname + " >/dev/null && echo ok"},
			want:  "ok\n",
		},
		{
			name:  "python",
			needs: []string{"/usr/bin/python3"},
			argv: []string{"/usr/bin/python3", "-c",
				`import os,threading,subprocess; t=threading.Thread(target=os.getpid); t.start(); t.join(); print(subprocess.run(["true"]).returncode)`},
			want: "0\n",
		},
		{
			name:  "go, filtered on every thread",
			needs: []string{h.path},
			argv:  []string{h.path, "-filter", "none", "call", "getpid", "clone3", "unshare_user"},
			want:  "getpid 0\nclone3 ENOSYS\nunshare_user EPERM\n",
		},
		{
			name:  "cc, make, git",
			needs: []string{"/bin/sh", "cc", "make", "git"},
			argv: []string{"/bin/sh", "-c", `set -e; cd "$1"
printf 'int main(void) { return 0; }\n' > a.c
cc -O2 -o a a.c && ./a
printf 'all:\n\t@./a && echo made\n' > Makefile
make -s
git init -q . && git add a.c && git -c user.name=t -c user.email=t@example.org commit -qm a && git log --oneline | wc -l`, "sh", work},
			want: "made\n1\n",
		},
		{
			name:  "java",
			needs: []string{"java"},
			argv:  []string{"java", "-Xshare:auto", filepath.Join(work, "Hello.java")},
			want:  "java 0\n",
			slow:  true,
		},
	}
	for _, p := range programs {
		t.Run("runs "+p.name, func(t *testing.T) {
			if p.slow && testing.Short() {
				t.Skip("slow; -short")
			}
			argv := append([]string(nil), p.argv...)
			for _, n := range p.needs {
				path, err := exec.LookPath(n)
				if err != nil {
					t.Skipf("%s is not installed", n)
				}
				if argv[0] == n {
					argv[0] = path
				}
			}
			out, code := h.run(t, 2*time.Minute, append([]string{"exec"}, argv...)...)
			want := p.want + "exit 0 false\n"
			if code != 0 || out != want {
				t.Errorf("exit %d, output:\n%s\nwant:\n%s", code, out, want)
			}
		})
	}
}
