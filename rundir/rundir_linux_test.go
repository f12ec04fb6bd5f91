package rundir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	tests := []struct {
		xdg  string
		want string
	}{
		{"/run/user/1000", "/run/user/1000/sandbox"},
		{"", "/tmp/sandbox-1000"},
		{"relative/dir", "/tmp/sandbox-1000"}, // not absolute: not trusted
	}
	for _, tc := range tests {
		if got := Path(1000, tc.xdg); got != tc.want {
			t.Errorf("Path(1000, %q) = %q, want %q", tc.xdg, got, tc.want)
		}
	}
}

// Guards against following or reusing a directory someone else made:
// each unsafe shape is refused with the reason, and a safe one is opened.
func TestOpen(t *testing.T) {
	base := t.TempDir()
	uid := os.Getuid()

	fresh := filepath.Join(base, "fresh")
	f, err := Open(fresh, uid)
	if err != nil {
		t.Fatalf("Open of a missing directory: %v", err)
	}
	f.Close()
	fi, err := os.Lstat(fresh)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created %v (%v), want a 0700 directory", fi, err)
	}
	// Opened again, the same directory is fine.
	f, err = Open(fresh, uid)
	if err != nil {
		t.Fatalf("Open of an existing private directory: %v", err)
	}
	f.Close()

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o755)
	target := filepath.Join(base, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		uid        int
		want       string
	}{
		{"group and others may enter", open, uid, "mode 0755"},
		{"a symlink in its place", link, uid, "not a directory"},
		{"a file in its place", file, uid, "not a directory"},
		{"owned by someone else", fresh, uid + 1, "owned by uid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(tc.path, tc.uid)
			if err == nil {
				f.Close()
				t.Fatalf("Open(%s) accepted it", tc.path)
			}
			var de *DirError
			if !errors.As(err, &de) || de.Path != tc.path || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%s) = %v, want a DirError mentioning %q", tc.path, err, tc.want)
			}
		})
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("something was made through the symlink: %v", ents)
	}
}
