package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n# comment\nada:x:1000:1001:Ada:/home/ada:/bin/sh\nbroken:x:zz:1::/:\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:ada\n"), 0o644)
	// A passwd reached through a symlink out of the root is not read.
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("eve:x:7:7::/:/bin/sh\n"), 0o644)
	linked := t.TempDir()
	os.MkdirAll(filepath.Join(linked, "etc"), 0o755)
	os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(linked, "etc/passwd"))

	tests := []struct {
		root, user string
		uid, gid   uint32
		home, err  string
	}{
		{root, "", 0, 0, "/root", ""},
		{root, "0", 0, 0, "/root", ""},
		{root, "ada", 1000, 1001, "/home/ada", ""},
		{root, "1000", 1000, 1001, "/home/ada", ""},
		{root, "ada:staff", 1000, 50, "/home/ada", ""},
		{root, "ada:77", 1000, 77, "/home/ada", ""},
		{root, "4000", 4000, 4000, "/", ""},
		{root, "grace", 0, 0, "", `no user "grace"`},
		{root, "ada:wheel", 0, 0, "", `no group "wheel"`},
		{root, "broken", 0, 0, "", `no user "broken"`},
		{linked, "eve", 0, 0, "", `no user "eve"`},
	}
	for _, tc := range tests {
		uid, gid, home, err := resolveUser([]string{tc.root}, tc.user)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolveUser(%q) = %v, want an error with %q", tc.user, err, tc.err)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid || home != tc.home {
			t.Errorf("resolveUser(%q) = %d, %d, %q, %v; want %d, %d, %q", tc.user, uid, gid, home, err, tc.uid, tc.gid, tc.home)
		}
	}
}
