package image

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sandbox/internal/e2e"
	"sandbox/internal/registry"
	"sandbox/internal/testimage"
)

// prepared is the answer of the store helper's prepare.
type prepared struct {
	ID           string   `json:"id"`
	Layers       []string `json:"layers"`
	Upper        string   `json:"upper"`
	Work         string   `json:"work"`
	MountOptions []string `json:"mountOptions"`
	Config       struct {
		Cmd []string
	} `json:"config"`
}

// mergedFile is what nshelper prints per path.
type mergedFile struct {
	Path     string `json:"path"`
	Kind     string `json:"kind"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Mode     int64  `json:"mode"`
	Data     string `json:"data"`
	Linkname string `json:"linkname"`
	Ino      uint64 `json:"ino"`
	Nlink    uint64 `json:"nlink"`
}

// Guards layer application end to end: ownership by many ids survives
// into the layer directories (container uid N >= 1 is host uid
// start+N-1, as rootless podman keeps it), and an overlay of the
// directories `prepare` returns, mounted the way the run path will mount
// it, shows exactly the merged view testimage.MultiLayerExpect spells
// out, whiteouts and opaque directories applied.
func TestMultiLayerOwnershipAndWhiteouts(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	layers := testimage.MultiLayerLayers()
	ref := pushLayout(t, reg, layoutOf(t, "multi", layers...), "multi", "test/multi:latest")
	s.ok("pull", "--tls-verify=false", ref)

	var p prepared
	if _, err := nsRunStore(t, s, &p, "prepare", "--name", "check", ref); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if len(p.Layers) != 3 || p.Upper == "" || p.Work == "" || strings.Join(p.MountOptions, ",") != "userxattr" {
		t.Fatalf("prepare = %+v, want 3 layers, upper, work, userxattr", p)
	}

	// From the host: every entry of each layer has its owner mapped.
	// Entries below a directory only its (subordinate) owner may enter
	// are out of the host user's reach; the merged view below covers them.
	checked := 0
	for i, l := range layers {
		for _, e := range l {
			if e.Kind == testimage.Whiteout || e.Kind == testimage.OpaqueWhiteout {
				continue
			}
			var st syscall.Stat_t
			p := filepath.Join(p.Layers[i], strings.TrimSuffix(e.Path, "/"))
			if err := syscall.Lstat(p, &st); err != nil {
				if errors.Is(err, syscall.EACCES) {
					continue
				}
				t.Errorf("layer %d: %v", i+1, err)
				continue
			}
			checked++
			if int(st.Uid) != hostUID(e.UID) || int(st.Gid) != hostGID(e.GID) {
				t.Errorf("layer %d %s: host owner %d:%d, want %d:%d (container %d:%d)", i+1, e.Path, st.Uid, st.Gid, hostUID(e.UID), hostGID(e.GID), e.UID, e.GID)
			}
			if e.Kind != testimage.Symlink && int64(st.Mode&0o7777) != e.Mode {
				t.Errorf("layer %d %s: mode %o, want %o", i+1, e.Path, st.Mode&0o7777, e.Mode)
			}
		}
	}

	if checked < 30 {
		t.Errorf("only %d layer entries could be checked from the host", checked)
	}

	// Inside the store's user namespace: the merged view.
	var files []mergedFile
	if _, err := nsRun(t, s, &files, "merge", strings.Join(p.Layers, ":"), p.Upper, p.Work); err != nil {
		t.Fatalf("merged view: %v", err)
	}
	got := map[string]mergedFile{}
	for _, f := range files {
		got[f.Path] = f
	}
	want := testimage.MultiLayerExpect()
	present := 0
	for _, w := range want {
		f, ok := got[w.Path]
		if w.Absent {
			if ok {
				t.Errorf("%s: present in the merged view (%s), want it deleted", w.Path, f.Kind)
			}
			continue
		}
		present++
		if !ok {
			t.Errorf("%s: missing from the merged view", w.Path)
			continue
		}
		kind := w.Kind.String()
		if w.Kind == testimage.Hardlink {
			kind = "file"
			if o := got[w.Linkname]; o.Ino != f.Ino || f.Nlink < 2 {
				t.Errorf("%s: inode %d (nlink %d), want the inode of %s (%d)", w.Path, f.Ino, f.Nlink, w.Linkname, o.Ino)
			}
		}
		if f.Kind != kind || f.UID != w.UID || f.GID != w.GID || f.Data != string(w.Data) || f.Linkname != w.Linkname && w.Kind == testimage.Symlink {
			t.Errorf("%s: %+v, want %s %d:%d %q -> %q", w.Path, f, kind, w.UID, w.GID, w.Data, w.Linkname)
		}
		if w.Kind != testimage.Symlink && f.Mode != w.Mode {
			t.Errorf("%s: mode %o, want %o", w.Path, f.Mode, w.Mode)
		}
	}
	if len(files) != present {
		var extra []string
		for _, f := range files {
			found := false
			for _, w := range want {
				found = found || (w.Path == f.Path && !w.Absent)
			}
			if !found {
				extra = append(extra, f.Path)
			}
		}
		t.Errorf("merged view has %d paths, want %d; extra: %v", len(files), present, extra)
	}

	// remove deletes the container and its layer; the image stays.
	if _, err := nsRunStore(t, s, nil, "remove", p.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(p.Upper)); !os.IsNotExist(err) {
		t.Errorf("container layer %s still there after remove: %v", filepath.Dir(p.Upper), err)
	}
	if _, err := nsRunStore(t, s, nil, "remove", p.ID); err == nil || !strings.Contains(err.Error(), "no storage container") {
		t.Errorf("second remove: %v, want no storage container", err)
	}
	if n := len(s.images()); n != 1 {
		t.Errorf("%d images after remove, want 1", n)
	}
}

// nsRunStore runs sandbox-store itself (found next to the binary under
// test) with args through storeclient, for the commands the CLI does not
// expose yet (prepare, remove).
func nsRunStore(t *testing.T, s *store, out any, args ...string) (any, error) {
	t.Helper()
	_, err := nsRunBin(t, s, filepath.Join(filepath.Dir(e2e.Bin), "sandbox-store"), out, append([]string{"-q"}, args...)...)
	return out, err
}

// Guards `sandbox import` of a root file system tarball: one layer, named
// localhost/NAME, owners kept, and listed like any other image.
func TestImport(t *testing.T) {
	s := newStore(t)
	raw, err := testimage.MultiLayerLayers()[0].Tar()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarball, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: dir, Timeout: pullTimeout}, s.args("import", "rootfs.tar", "imported")...)
	e2e.WantExit(t, r, 0)
	id := strings.TrimSpace(r.Stdout)
	imgs := s.images()
	if len(imgs) != 1 || imgs[0].ID != id || imgs[0].Names[0] != "localhost/imported:latest" {
		t.Fatalf("images %+v, want localhost/imported:latest %s", imgs, id)
	}
	ls := s.layers()
	if len(ls) != 1 || ls[0].UncompressedDigest != testimage.Digest(raw) {
		t.Fatalf("layers %+v, want one with diff id %s", ls, testimage.Digest(raw))
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(s.root, "overlay", ls[0].ID, "diff", "var", "nobody"), &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != hostUID(65534) {
		t.Errorf("var/nobody: host uid %d, want %d (container 65534)", st.Uid, hostUID(65534))
	}
	var d struct{ Names []string }
	json.Unmarshal([]byte(s.ok("image", "inspect", "imported").Stdout), &d)
	if len(d.Names) != 1 {
		t.Errorf("inspect imported: %+v", d)
	}
}

// Guards the fallback without subordinate ids: no newuidmap on PATH, the
// store still works with every file owned by the caller, and says so.
func TestSingleIDFallbackIsVisible(t *testing.T) {
	e2e.RequireUnprivileged(t)
	raw, err := testimage.MultiLayerLayers()[0].Tar()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rootfs.tar"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "single")
	// The store's directories may be read-only to their owner; remove them
	// as root of the store's namespace.
	t.Cleanup(func() {
		if _, err := nsRun(t, &store{t: t, root: root, runRoot: filepath.Join(dir, "run")}, nil, "rmtree", root); err != nil {
			t.Errorf("removing the store: %v", err)
		}
	})
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: dir, Timeout: pullTimeout, Env: e2e.EnvWith("PATH=" + t.TempDir())},
		"import", "rootfs.tar", "single", "--root", root, "--runroot", filepath.Join(dir, "run"))
	e2e.WantExit(t, r, 0)
	if !strings.Contains(r.Stderr, "ownership collapsed") || !strings.Contains(r.Stderr, "newuidmap") {
		t.Errorf("no notice that ownership is collapsed, or no reason:\n%s", r)
	}
	var owners = map[uint32]bool{}
	filepath.Walk(filepath.Join(root, "overlay"), func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			owners[fi.Sys().(*syscall.Stat_t).Uid] = true
		}
		return nil
	})
	if len(owners) != 1 || !owners[uint32(os.Getuid())] {
		t.Errorf("owners on disk %v, want only uid %d", owners, os.Getuid())
	}
}

// Guards the fix-it error for a store helper that is not installed.
func TestMissingHelper(t *testing.T) {
	dir := t.TempDir()
	e2e.CopyFile(t, e2e.Bin, filepath.Join(dir, "sandbox"), 0o755)
	r := e2e.RunBounded(t, e2e.RunOpts{}, filepath.Join(dir, "sandbox"), "images", "--root", filepath.Join(dir, "root"))
	e2e.WantSandboxError(t, r, "sandbox-store is missing", filepath.Join(dir, "sandbox-store"), "make build")
}
