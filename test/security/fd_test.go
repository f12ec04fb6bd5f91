package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// Guards against host directory fds leaking into the sandbox
// (CVE-2024-21626, runc's leaked cgroup fd plus workdir
// /proc/self/fd/N): the caller hands the CLI fds for its home directory
// and for / without close-on-exec; inside, only 0, 1 and 2 exist, and a
// work directory that would be reached through one of the leaked fds is
// refused before anything runs, instead of starting the command with a
// current directory outside the root.
func TestLeakedHostDirFds(t *testing.T) {
	e2e.RequireUnprivileged(t)
	home, err := os.UserHomeDir()
	e2e.RequireX(t, err == nil, "no home directory: %v", err)
	homeDir, err := os.Open(home)
	e2e.RequireX(t, err == nil, "open %s: %v", home, err)
	defer homeDir.Close()
	rootDir, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer rootDir.Close()
	extra := []*os.File{homeDir, rootDir} // fds 3 and 4

	// Control: a plain exec does pass them on, so the checks can fail.
	ctl := e2e.RunBounded(t, e2e.RunOpts{Extra: extra}, "/bin/ls", "-l", "/proc/self/fd/")
	if !strings.Contains(ctl.Stdout, "3 -> "+home) || !strings.Contains(ctl.Stdout, "4 -> /") {
		t.Fatalf("control: the extra fds did not reach a plain child\n%s", ctl)
	}

	t.Run("only-stdio-inside", func(t *testing.T) {
		wd := t.TempDir()
		tryIn(t, wd)
		r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd, Extra: extra}, "run", "--", "sh", "-c",
			`./try call opendir:/proc/self/fd opendir:/proc/self/fd/3 opendir:/proc/self/fd/4 readlink:/proc/self/cwd`)
		e2e.WantExit(t, r, 0)
		res, detail := tryResults(r.Stdout)
		// try's own directory fd is the only one beyond 0-2 it may see.
		fds := strings.Split(strings.TrimPrefix(detail["opendir:/proc/self/fd"], "entries="), ",")
		for _, fd := range fds {
			switch fd {
			case "0", "1", "2", "3", ".", "..":
			default:
				t.Errorf("fd %s is open inside; want only 0, 1, 2 (and the listing's own)", fd)
			}
		}
		for _, tok := range []string{"opendir:/proc/self/fd/3", "opendir:/proc/self/fd/4"} {
			// fd 3 is the listing's own while it lists, then closed.
			if res[tok] == "OK" {
				t.Errorf("%s: OK (%s): a host directory is reachable through a leaked fd", tok, detail[tok])
			}
		}
		if got := detail["readlink:/proc/self/cwd"]; got != wd {
			t.Errorf("cwd inside is %q, want the work directory %s", got, wd)
		}
		if t.Failed() {
			t.Logf("%s", r)
		}
	})

	for _, w := range []string{"/proc/self/fd/3", "/proc/self/fd/4"} {
		t.Run("workdir-"+filepath.Base(w), func(t *testing.T) {
			wd := t.TempDir()
			witness := filepath.Join(wd, "cwd-inside")
			r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd, Extra: extra}, "run", "-w", w, "--", "sh", "-c",
				"pwd -P > "+e2e.ShQuote(witness))
			if b, err := os.ReadFile(witness); err == nil {
				t.Errorf("-w %s: the command ran with its current directory at %q", w, strings.TrimSpace(string(b)))
			}
			e2e.WantSandboxError(t, r)
		})
	}
}
