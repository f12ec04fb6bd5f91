package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"sandbox/internal/e2e"
	"sandbox/internal/testimage"
)

// Guards the shared layout with rootless podman, an independent
// implementation: an image podman loaded into its own store runs from
// that store with --root, and an image sandbox saved loads and runs in
// podman.
func TestPodmanStoreInterop(t *testing.T) {
	podman := e2e.RequireTool(t, "podman")
	e2e.RequireTool(t, "runc")
	requireFullMap(t)
	dir := t.TempDir()
	// podman refuses a run root longer than 50 characters.
	short, err := os.MkdirTemp("", "pm")
	if err != nil {
		t.Fatal(err)
	}
	proot, prun := filepath.Join(dir, "podman-root"), filepath.Join(short, "run")
	pm := func(args ...string) (string, error) {
		cmd := exec.Command(podman, append([]string{"--root", proot, "--runroot", prun, "--storage-driver", "overlay"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		// Files of subordinate ids: removed from podman's namespace.
		exec.Command(podman, "unshare", "rm", "-rf", proot, short).Run()
		// Rootless podman leaves a pause process keeping its user
		// namespace; it was started for this test, so it ends with it.
		stopPodmanPause(t)
	})

	archive := filepath.Join(dir, "busybox.tar")
	skopeo(t, "copy", "oci:"+testimage.BuildBusybox(t, "busybox")+":busybox", "docker-archive:"+archive+":example.com/podman/busybox:1")
	if out, err := pm("load", "-i", archive); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	o := e2e.RunOpts{Timeout: pullTimeout}
	r := e2e.RunSandbox(t, o, "run", "--root", proot, "--runroot", prun, "--rm", "example.com/podman/busybox:1", "sh", "-c", "cat /etc/hostname; stat -c %u /bin/busybox")
	e2e.WantExit(t, r, 0)
	if lines := e2e.Lines(r.Stdout); len(lines) != 2 || lines[1] != "0" {
		t.Errorf("run from podman's store:\n%s", r)
	}
	r = e2e.RunSandbox(t, o, "images", "--root", proot, "--runroot", prun)
	e2e.WantExit(t, r, 0)
	if !strings.Contains(r.Stdout, "example.com/podman/busybox") {
		t.Errorf("images of podman's store:\n%s", r.Stdout)
	}

	// The other way: saved by sandbox, loaded and run by podman.
	s := newStore(t)
	s.ok("load", "-i", archive)
	saved := filepath.Join(dir, "saved.tar")
	s.ok("save", "-o", saved, "example.com/podman/busybox:1")
	if out, err := pm("rmi", "-f", "example.com/podman/busybox:1"); err != nil {
		t.Fatalf("podman rmi: %v\n%s", err, out)
	}
	if out, err := pm("load", "-i", saved); err != nil {
		t.Fatalf("podman load of sandbox's archive: %v\n%s", err, out)
	}
	out, err := pm("--runtime", "runc", "run", "--rm", "--network=none", "example.com/podman/busybox:1", "id", "-u")
	if err != nil || strings.TrimSpace(lastLine(out)) != "0" {
		t.Errorf("podman run of sandbox's saved image: %v\n%s", err, out)
	}
}

func lastLine(s string) string {
	l := e2e.Lines(s)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// stopPodmanPause ends the pause process rootless podman started under
// this suite's XDG_RUNTIME_DIR (its pid is in libpod/tmp/pause.pid).
func stopPodmanPause(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "libpod", "tmp", "pause.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmdline), "podman") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
