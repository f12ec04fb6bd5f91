package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// BusyboxRoot makes a small root file system in a new temporary directory
// from the host's static busybox: /bin/busybox with its applets as links,
// /etc/passwd and /etc/group with root, nobody and ada (1000), an empty
// /proc, /dev and /sys, and /tmp (1777). It returns the root's path.
func BusyboxRoot(t *testing.T) string {
	t.Helper()
	bb := RequireTool(t, "busybox")
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "root", "home/ada", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	CopyFile(t, bb, filepath.Join(root, "bin", "busybox"), 0o755)
	for _, a := range []string{"sh", "ls", "cat", "id", "echo", "touch", "stat", "ps", "grep", "mkdir", "rm", "sleep", "true", "readlink", "wc", "head"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\nada:x:1000:1000:Ada:/home/ada:/bin/sh\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\nada:x:1000:\nstaff:x:50:ada\n",
		"etc/hostname": "image\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
