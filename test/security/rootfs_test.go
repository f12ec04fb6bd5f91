package security

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"sandbox/internal/e2e"
)

// Guards against a root image redirecting the kernel's file systems with
// a symlink (the CVE-2019-19921 class: /proc in an image pointing
// elsewhere, so procfs lands where the masks do not look). A root whose
// /proc, /dev or /sys is a symlink, absolute or relative, is refused
// before anything is mounted there, and the link's target stays as it was.
func TestRootKernelDirSymlinksRefused(t *testing.T) {
	e2e.RequireUnprivileged(t)
	for _, tc := range []struct{ dir, target string }{
		{"proc", "/tmp/fake-proc"},
		{"proc", "tmp/fake-proc"},
		{"dev", "/tmp/fake-dev"},
		{"sys", "../../tmp/fake-sys"},
	} {
		t.Run(tc.dir+"->"+tc.target, func(t *testing.T) {
			root := e2e.BusyboxRoot(t)
			link := filepath.Join(root, tc.dir)
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.target, link); err != nil {
				t.Fatal(err)
			}
			fake := filepath.Join(root, "tmp", filepath.Base(tc.target))
			if err := os.Mkdir(fake, 0o755); err != nil {
				t.Fatal(err)
			}
			r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--rootfs", root, "--", "sh", "-c", "echo ran")
			e2e.WantSandboxError(t, r, "refusing the root: /"+tc.dir+" is a symbolic link in it")
			if r.Stdout != "" {
				t.Errorf("the command ran: %q", r.Stdout)
			}
			if ents, _ := os.ReadDir(fake); len(ents) != 0 {
				t.Errorf("%s got %d entries", fake, len(ents))
			}
		})
	}
}

// Guards the sandbox binary against root of an image: uid 0 with the
// default capabilities still cannot open PID 1's executable, memory or
// file descriptors through /proc (CVE-2019-5736 class). Listing
// /proc/1/fd is not refused: the kernel gives a non-dumpable process's
// /proc files to root of its user namespace, which this command is; the
// entries themselves need ptrace access, which it lacks.
func TestOwnBinaryNotReachableFromImageRoot(t *testing.T) {
	e2e.RequireUnprivileged(t)
	root := e2e.BusyboxRoot(t)
	tryIn(t, filepath.Join(root, "bin"))
	toks := []string{"openw:/proc/1/exe", "read:/proc/1/exe", "readlink:/proc/1/exe",
		"opendir:/proc/1/root", "readlink:/proc/1/root", "readlink:/proc/1/cwd",
		"opendir:/proc/1/map_files", "openw:/proc/1/mem", "read:/proc/1/environ"}
	for fd := 0; fd < 12; fd++ {
		toks = append(toks, fmt.Sprintf("openw:/proc/1/fd/%d", fd), fmt.Sprintf("readlink:/proc/1/fd/%d", fd))
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{}, append([]string{"run", "--rootfs", root, "--", "/bin/try", "call"}, toks...)...)
	e2e.WantExit(t, r, 0)
	res, detail := tryResults(r.Stdout)
	for _, tok := range toks {
		if res[tok] == "" {
			t.Errorf("%s: no answer\n%s", tok, r)
		} else if res[tok] == "OK" {
			t.Errorf("%s: OK (%s): root of the image reaches PID 1's host-side files", tok, detail[tok])
		}
	}
}
