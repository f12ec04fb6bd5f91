package preflight

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// skipOrFail skips a test whose prerequisite this host lacks, visibly, and
// fails it under SANDBOX_TEST_STRICT=1, which CI sets.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("SANDBOX_TEST_STRICT") == "1" {
		t.Fatalf("SANDBOX_TEST_STRICT=1 and a prerequisite is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}

func TestProbeMainArgs(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"overlay"}, 2},
		{[]string{"overlay", "relative/dir"}, 2},
		{[]string{"overlay", "/a", "/b"}, 2},
		{[]string{"true"}, 0},
	}
	for _, tt := range tests {
		if got := ProbeMain(tt.args); got != tt.want {
			t.Errorf("ProbeMain(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestProbeUserns(t *testing.T) {
	err := ProbeUserns(context.Background())
	if err == nil {
		return
	}
	var ce *CloneError
	if !errors.As(err, &ce) {
		t.Fatalf("ProbeUserns = %v, want nil or a *CloneError", err)
	}
	skipOrFail(t, "this host refuses user namespaces: %v (%+v)", err, ReadUsernsFacts(os.DirFS("/")))
}

func TestProbeMounts(t *testing.T) {
	if err := ProbeUserns(context.Background()); err != nil {
		skipOrFail(t, "no user namespaces: %v", err)
	}
	parent := t.TempDir()
	m := ProbeMounts(context.Background(), parent, uint32(os.Getuid()), uint32(os.Getgid()))
	t.Logf("%+v", m)
	if m.Dir != parent || m.FSType == "" {
		t.Errorf("Dir, FSType = %q, %q; want %q and a type", m.Dir, m.FSType, parent)
	}
	if m.Err != nil || !m.Ran {
		t.Fatalf("the probe did not run: %v", m.Err)
	}
	if m.Mount != nil {
		skipOrFail(t, "mounting in a user namespace fails here: %v", m.Mount)
	}
	if ok, _ := kernelAtLeast(KernelRelease(), 5, 11); ok && m.Overlay != nil {
		if fs := m.FSType; fs == "ext4" || fs == "xfs" || fs == "btrfs" || fs == "tmpfs" {
			t.Errorf("Overlay = %v on Linux %s with the upper dir on %s, want it to work", m.Overlay, KernelRelease(), fs)
		}
	}
	left, err := os.ReadDir(parent)
	if err != nil || len(left) != 0 {
		t.Errorf("the probe left %v behind in %s (%v)", left, parent, err)
	}
}

func TestProbeMountsWithoutTempDir(t *testing.T) {
	m := ProbeMounts(context.Background(), filepath.Join(t.TempDir(), "missing"), uint32(os.Getuid()), uint32(os.Getgid()))
	if !errors.Is(m.Err, os.ErrNotExist) || m.Ran {
		t.Errorf("ProbeMounts in a missing directory = %+v, want Err ENOENT and not run", m)
	}
}

func TestProbeMountsCannotMapRootAsUser(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root may map any id; this checks the refused uid_map of an unprivileged user")
	}
	m := ProbeMounts(context.Background(), t.TempDir(), 0, 0)
	var ce *CloneError
	if !errors.As(m.Err, &ce) || !errors.Is(m.Err, syscall.EPERM) {
		t.Errorf("mapping uid 0 as uid %d: Err = %v, want a *CloneError with EPERM", os.Getuid(), m.Err)
	}
}

func TestOpenFuse(t *testing.T) {
	fi, err := os.Stat("/dev/fuse")
	if err != nil {
		skipOrFail(t, "no /dev/fuse: %v", err)
	}
	err = OpenFuse()
	usable := os.Getuid() == 0 || fi.Mode().Perm()&0o006 == 0o006
	switch {
	case usable && err != nil:
		t.Errorf("OpenFuse = %v with /dev/fuse mode %v", err, fi.Mode())
	case !usable && !errors.Is(err, syscall.EACCES):
		t.Errorf("OpenFuse = %v with /dev/fuse mode %v as uid %d, want EACCES", err, fi.Mode(), os.Getuid())
	}
}

func TestFSType(t *testing.T) {
	if got := FSType("/proc"); got != "proc" {
		t.Errorf("FSType(/proc) = %q", got)
	}
	if got := FSType(t.TempDir()); got == "" {
		t.Error("FSType of a temporary directory is empty")
	}
	if got := FSType("/nonexistent/path"); got != "" {
		t.Errorf("FSType of a missing path = %q, want empty", got)
	}
}

func TestKernelRelease(t *testing.T) {
	want, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Skip(err)
	}
	if got := KernelRelease(); got != strings.TrimSpace(string(want)) {
		t.Errorf("KernelRelease = %q, want %q", got, want)
	}
}

// TestGather runs every probe on this host and checks the facts against
// what the test finds out independently.
func TestGather(t *testing.T) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	o := Options{
		PathEnv:    os.Getenv("PATH"),
		RuntimeDir: os.Getenv("XDG_RUNTIME_DIR"),
		User:       os.Getenv("USER"),
		UID:        uid,
		GID:        gid,
		Executable: "/usr/local/bin/sandbox",
		ProbeDir:   t.TempDir(),
	}
	f := Gather(context.Background(), o)
	if f.UID != uid || f.Kernel != KernelRelease() {
		t.Errorf("UID, Kernel = %d, %q", f.UID, f.Kernel)
	}
	for _, tool := range []Tool{f.FuseOverlayfs, f.Nsenter, f.Pasta, f.Slirp4netns} {
		path, err := exec.LookPath(tool.Name)
		if err != nil {
			if tool.Path != "" {
				t.Errorf("%s: found %s, exec.LookPath did not", tool.Name, tool.Path)
			}
			continue
		}
		if tool.Path != path {
			t.Errorf("%s: Path = %q, exec.LookPath = %q", tool.Name, tool.Path, path)
		}
		if tool.Err != nil || tool.Version == "" {
			t.Errorf("%s: Version = %q, Err = %v", tool.Name, tool.Version, tool.Err)
		}
	}
	if fi, err := os.Stat("/sys/fs/cgroup"); err == nil && fi.IsDir() {
		want := CgroupHybrid
		if FSType("/sys/fs/cgroup") == "cgroup2" {
			want = CgroupUnified
		}
		if f.Cgroup.Layout != want && !(want == CgroupHybrid && f.Cgroup.Layout == CgroupLegacy) {
			t.Errorf("cgroup layout = %q, statfs says %q", f.Cgroup.Layout, FSType("/sys/fs/cgroup"))
		}
	}
	checks := Evaluate(f)
	for _, c := range checks {
		t.Logf("%-5v %-8v %s: %s %q", c.OK, c.Required, c.Name, c.Detail, c.Fixes)
		if c.Detail == "" {
			t.Errorf("%s: no detail", c.Name)
		}
		if c.Required && !c.OK {
			skipOrFail(t, "required check %s fails on this host: %s", c.Name, c.Detail)
		}
	}
}

// TestUnprivileged runs the real probes again as an unprivileged user, the
// way sandbox is meant to run. As root it re-runs this test binary as
// nobody; run as a user, the other tests already did that.
func TestUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skipf("already unprivileged (uid %d): the probes ran as this user", os.Getuid())
	}
	if os.Getenv("SANDBOX_TEST_UNPRIVILEGED_CHILD") != "" {
		t.Fatal("the unprivileged child runs as root")
	}
	const nobody = 65534
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary sits in a directory only root may enter; give the
	// user a copy, and a temporary directory of its own.
	dir, err := os.MkdirTemp("", "preflight-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "preflight.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^(TestProbeUserns|TestProbeMounts|TestProbeMountsCannotMapRootAsUser|TestOpenFuse|TestGather)$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "USER=nobody", "TMPDIR=" + tmp,
		"SANDBOX_TEST_STRICT=" + os.Getenv("SANDBOX_TEST_STRICT"),
		"SANDBOX_TEST_UNPRIVILEGED_CHILD=1",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("as uid %d:\n%s", nobody, out.String())
	if err != nil {
		t.Fatalf("the probes failed as uid %d: %v", nobody, err)
	}
	if n := strings.Count(out.String(), "--- SKIP"); n > 0 {
		// Every test above runs as a user; a skip is a missing host
		// prerequisite, shown in the log above.
		skipOrFail(t, "%d probe tests skipped as uid %d", n, nobody)
	}
}
