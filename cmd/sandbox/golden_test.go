package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/idmap"
	"sandbox/preflight"
	"sandbox/profiles"
	"sandbox/spec"
	"sandbox/storeclient"
	"sandbox/userns"
)

// go test ./cmd/sandbox -run Golden -update rewrites testdata/golden.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const goldenDir = "testdata/golden"

// exePlaceholder stands in for os.Executable() in golden files, which must
// not hold paths of the machine that wrote them.
const exePlaceholder = "EXE"

// goldenCase renders one user-facing error: what reaches stderr, and the
// exit code.
type goldenCase struct {
	name   string
	render func(t *testing.T) (string, int)
}

// viaExplain renders err the way Main does: explain writes the message and
// maps code 0 to 125.
func viaExplain(err error) func(*testing.T) (string, int) {
	return func(t *testing.T) (string, int) {
		t.Helper()
		var stderr bytes.Buffer
		code := explain(&env{stderr: &stderr}, err)
		return stderr.String(), code
	}
}

// viaUserns renders err through explainUsernsWith with fixed sysctl facts,
// so the output does not depend on this host.
func viaUserns(err error, f preflight.UsernsFacts) func(*testing.T) (string, int) {
	return func(t *testing.T) (string, int) {
		t.Helper()
		m := explainUsernsWith(err, func() preflight.UsernsFacts { return f })
		if m == nil {
			t.Fatalf("explainUsernsWith(%v) = nil, want a message", err)
		}
		return render(m)
	}
}

// render writes m and returns its exit code as explain computes it.
func render(m *message) (string, int) {
	var b bytes.Buffer
	m.write(&b)
	code := m.code
	if code == 0 {
		code = 125
	}
	return b.String(), code
}

// planError runs profiles.Plan with one user volume and returns its error,
// so the wording is pinned on the error Plan really returns.
func planError(t *testing.T, volume string) error {
	t.Helper()
	host := fstest.MapFS{
		"src":       {Mode: fs.ModeDir | 0o755},
		"home/ada":  {Mode: fs.ModeDir | 0o755},
		"usr/bin/x": {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
	}
	self := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 1000, Size: 1}}
	in := profiles.Inputs{
		Args: []string{"true"}, Cwd: "/home/ada", Volumes: []string{volume},
		UID: 1000, GID: 1000, IDMap: spec.IDMapSingle, UIDMappings: self, GIDMappings: self,
	}
	_, err := profiles.Plan(&profiles.Profile{Name: "test"}, in, host)
	if err == nil {
		t.Fatalf("Plan with -v %q succeeded, want an error", volume)
	}
	return err
}

func goldenCases() []goldenCase {
	noRange := &idmap.NoRangeError{Kind: idmap.UID, User: "ada", ID: 1000, File: "/etc/subuid"}
	// A host with user namespaces otherwise allowed: the sysctl Debian
	// adds is absent and AppArmor does not restrict.
	open := preflight.UsernsFacts{MaxUserNamespaces: 63457, UnprivilegedClone: -1, AppArmorRestrict: -1}
	return []goldenCase{
		{"bind-source-missing", viaExplain(&profiles.BindSourceError{Source: "/nonexistent", Dest: "/x", Err: syscall.ENOENT})},
		{"volume-destination-relative", func(t *testing.T) (string, int) {
			return viaExplain(planError(t, "/src:rel/dir"))(t)
		}},
		{"volume-destination-dotdot", func(t *testing.T) (string, int) {
			return viaExplain(planError(t, "/src:/a/../../etc"))(t)
		}},
		{"unknown-flag", func(t *testing.T) (string, int) {
			var stdout, stderr bytes.Buffer
			code := Main([]string{"run", "--bogus", "true"}, nil, &stdout, &stderr)
			if stdout.Len() != 0 {
				t.Errorf("unknown flag wrote to stdout:\n%s", stdout.String())
			}
			return stderr.String(), code
		}},
		{"subuid-no-range", viaExplain(noRange)},
		{"newuidmap-missing", viaExplain(&idmap.HelperMissingError{Name: "newuidmap", Searched: []string{"/usr/local/bin", "/usr/bin", "/bin"}})},
		{"newuidmap-failed", viaExplain(&userns.MapError{Err: &idmap.HelperError{
			Path:     "/usr/bin/newuidmap",
			Args:     []string{"4242", "0", "1000", "1", "1", "100000", "65536"},
			ExitCode: 1,
			Stderr:   "newuidmap: uid range [1-65537) -> [100000-165536) not allowed\n",
			Err:      errors.New("exit status 1"),
		}})},
		{"userns-max-zero", viaUserns(&userns.SpawnError{Err: syscall.ENOSPC},
			preflight.UsernsFacts{MaxUserNamespaces: 0, UnprivilegedClone: -1, AppArmorRestrict: -1})},
		{"userns-max-in-use", viaUserns(&userns.SpawnError{Err: syscall.ENOSPC}, open)},
		// Debian's sysctl makes clone(CLONE_NEWUSER) fail with EPERM.
		{"userns-unprivileged-clone-zero", viaUserns(&userns.SpawnError{Err: syscall.EPERM},
			preflight.UsernsFacts{MaxUserNamespaces: 63457, UnprivilegedClone: 0, AppArmorRestrict: -1})},
		{"userns-apparmor-restrict", viaUserns(&userns.SpawnError{Err: syscall.EACCES},
			preflight.UsernsFacts{MaxUserNamespaces: 63457, UnprivilegedClone: -1, AppArmorRestrict: 1})},
		{"command-not-found", viaUserns(&userns.ChildError{Stage: userns.StageExec, Op: "exec", Path: "nosuchcmd", Errno: syscall.ENOENT}, open)},
		{"command-not-executable", viaUserns(&userns.ChildError{Stage: userns.StageExec, Op: "exec", Path: "/home/ada/script.sh", Errno: syscall.EACCES}, open)},
		{"keep-id-no-range", viaExplain(&fullMapError{Flag: "--userns=keep-id", Err: noRange})},
		{"store-helper-missing", viaExplain(&storeclient.MissingError{Path: "/usr/local/bin/sandbox-store", Err: syscall.ENOENT})},
		{"image-reference-invalid", viaExplain(&storeclient.Error{Kind: "reference", Ref: "127.0.0.1:5000/Busybox", Reason: "repository names must be lowercase"})},
		{"image-no-registries", viaExplain(&storeclient.Error{Kind: "no-registries", Ref: "busybox"})},
		{"image-not-found", viaExplain(&storeclient.Error{Kind: "not-found", Ref: "busybox"})},
		{"image-layer-rejected", viaExplain(&storeclient.Error{Kind: "layer-rejected",
			Layer: "sha256:2a40ab2bc8726e177984aab28e9304686419a2a426c560a0c9abf6e632e0bf81", Entry: "escape/evil",
			Reason: "lies below escape, a symlink to /tmp in a lower layer; a layer may not write through a symlink"})},
		{"image-digest-mismatch", viaExplain(&storeclient.Error{Kind: "digest-mismatch",
			Expected: "sha256:036c98e96bfad4bd2c926e9acee3e725cd899586092934a581e42b0839a47492",
			Actual:   "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})},
		{"image-pull-plain-http", viaExplain(&storeclient.Error{Kind: "pull", Ref: "127.0.0.1:5000/test/busybox", Cause: "http",
			Tried:  []string{"127.0.0.1:5000/test/busybox:latest"},
			Reason: `pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": http: server gave HTTP response to HTTPS client`})},
		{"image-pull-unauthorized", viaExplain(&storeclient.Error{Kind: "pull", Ref: "registry.example.com/private/app", Cause: "unauthorized",
			Tried:  []string{"registry.example.com/private/app:latest"},
			Reason: "reading manifest latest in registry.example.com/private/app: unauthorized: authentication required"})},
		{"image-pull-no-space", viaExplain(&storeclient.Error{Kind: "no-space", Path: "/home/ada/.local/share/sandbox/storage",
			Reason: "write /home/ada/.local/share/sandbox/storage/(unnamed file for checking a blob): no space left on device"})},
		{"image-store-dir", viaExplain(&storeDirError{What: "a writable layer for fuse-overlayfs", Dir: "/home/ada/.local/share/sandbox/storage", Err: syscall.EACCES})},
		{"overlay-kernel-refused", viaExplain(&userns.ChildError{Stage: userns.StageMounts, Op: "create overlay root",
			Path: "/home/ada/.local/share/sandbox/storage/overlay/5a58/diff", Errno: syscall.EINVAL, KernelOverlay: true})},
		{"overlay-fuse-missing", viaExplain(&userns.RootDaemonError{Err: &fuseoverlay.MissingError{Program: "fuse-overlayfs", Err: exec.ErrNotFound}})},
		{"overlay-fuse-failed", viaExplain(&userns.RootDaemonError{Err: &fuseoverlay.ExitError{Err: errors.New("exit status 1"),
			Stderr: "fuse-overlayfs: cannot read upper dir: Permission denied"}})},
		{"image-store-single-id", func(t *testing.T) (string, int) {
			return singleIDNotice(&idmap.HelperMissingError{Name: "newuidmap", Searched: []string{"/usr/bin", "/bin"}}) + "\n", 0
		}},
	}
}

func TestGolden(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tc := range goldenCases() {
		seen[tc.name+".txt"] = true
		t.Run(tc.name, func(t *testing.T) {
			out, code := tc.render(t)
			out = strings.ReplaceAll(out, exe, exePlaceholder)
			if strings.Contains(out, wd) {
				t.Errorf("output holds this machine's working directory %s:\n%s", wd, out)
			}
			got := fmt.Sprintf("%sexit code: %d\n", out, code)
			file := filepath.Join(goldenDir, tc.name+".txt")
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/sandbox -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (rerun with -update if the change is intended)\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}

	// A golden file without a case pins nothing; it is a renamed or
	// removed case left behind.
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if seen[e.Name()] {
			continue
		}
		if *update {
			if err := os.Remove(filepath.Join(goldenDir, e.Name())); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s/%s has no case in goldenCases (rerun with -update to remove it)", goldenDir, e.Name())
	}
}

// TestGoldenExitCodes pins the codes a shell script relies on, apart from
// the wording: 127 for a missing command and 126 for one that cannot run,
// as sh and env(1) use them.
func TestGoldenExitCodes(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  int
	}{
		{syscall.ENOENT, 127},
		{syscall.ENOTDIR, 127},
		{syscall.EACCES, 126},
		{syscall.ENOEXEC, 126},
		{syscall.EPERM, 126},
		{syscall.EISDIR, 126},
		{syscall.E2BIG, 125},
	}
	for _, tc := range tests {
		err := &userns.ChildError{Stage: userns.StageExec, Op: "exec", Path: "cmd", Errno: tc.errno}
		m := explainUsernsWith(err, func() preflight.UsernsFacts { return preflight.UsernsFacts{} })
		if _, code := render(m); code != tc.want {
			t.Errorf("exec failing with %v: exit code %d, want %d", tc.errno, code, tc.want)
		}
	}
}
