//go:build linux

package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseInitArgs(t *testing.T) {
	tests := []struct {
		args             []string
		wantSync, wantSp int
		wantPrewarm      bool
		wantErr          string // substring; empty: no error
	}{
		{args: []string{"--sync-fd=3", "--spec-fd=4"}, wantSync: 3, wantSp: 4},
		{args: []string{"--spec-fd=4", "--sync-fd=3"}, wantSync: 3, wantSp: 4},
		{args: []string{"--sync-fd=10", "--spec-fd=11"}, wantSync: 10, wantSp: 11},
		{args: []string{"--sync-fd=3", "--spec-fd=4", "--prewarm"}, wantSync: 3, wantSp: 4, wantPrewarm: true},
		{args: nil, wantErr: "--sync-fd and --spec-fd are required"},
		{args: []string{"--sync-fd=3"}, wantErr: "--sync-fd and --spec-fd are required"},
		{args: []string{"--spec-fd=4"}, wantErr: "--sync-fd and --spec-fd are required"},
		{args: []string{"--sync-fd=x", "--spec-fd=4"}, wantErr: `bad fd in "--sync-fd=x"`},
		{args: []string{"--sync-fd=", "--spec-fd=4"}, wantErr: `bad fd in "--sync-fd="`},
		// 0, 1 and 2 are the command's stdio, never the protocol's.
		{args: []string{"--sync-fd=2", "--spec-fd=4"}, wantErr: `bad fd in "--sync-fd=2"`},
		{args: []string{"--sync-fd=3", "--spec-fd=-1"}, wantErr: `bad fd in "--spec-fd=-1"`},
		{args: []string{"--sync-fd=3", "--spec-fd=4", "--log-fd=5"}, wantErr: `unknown argument "--log-fd=5"`},
		{args: []string{"--sync-fd", "3"}, wantErr: `unexpected argument "--sync-fd"`},
		{args: []string{"true"}, wantErr: `unexpected argument "true"`},
	}
	for _, tc := range tests {
		syncFD, specFD, prewarm, err := parseInitArgs(tc.args)
		if tc.wantErr == "" {
			if err != nil || syncFD != tc.wantSync || specFD != tc.wantSp || prewarm != tc.wantPrewarm {
				t.Errorf("parseInitArgs(%q) = %d, %d, %v; want %d, %d, nil", tc.args, syncFD, specFD, err, tc.wantSync, tc.wantSp)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseInitArgs(%q) = %d, %d, %v; want an error mentioning %q", tc.args, syncFD, specFD, err, tc.wantErr)
		}
	}
}

// pathDirs makes two PATH directories:
//
//	first/  tool (0755)  plain (0644)  both (0644)  sub/
//	second/ both (0755)
//
// Running as root does not change the outcome: access(2) with X_OK
// fails for root too when no execute bit is set.
func pathDirs(t *testing.T) (first, second string) {
	t.Helper()
	base := t.TempDir()
	first, second = filepath.Join(base, "first"), filepath.Join(base, "second")
	for _, d := range []string{first, second, filepath.Join(first, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]os.FileMode{
		filepath.Join(first, "tool"):  0o755,
		filepath.Join(first, "plain"): 0o644,
		filepath.Join(first, "both"):  0o644,
		filepath.Join(second, "both"): 0o755,
	}
	for p, mode := range files {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask
			t.Fatal(err)
		}
	}
	return first, second
}

func TestLookPath(t *testing.T) {
	first, second := pathDirs(t)
	env := []string{"HOME=/root", "PATH=" + first + ":" + second}
	tests := []struct {
		name      string
		cmd       string
		env       []string
		want      string
		wantErrno syscall.Errno
		wantPath  string // the path in the error
	}{
		{name: "found", cmd: "tool", env: env, want: first + "/tool"},
		{name: "first executable match wins", cmd: "both", env: env, want: second + "/both"},
		{name: "not executable", cmd: "plain", env: env, wantErrno: syscall.EACCES, wantPath: first + "/plain"},
		{name: "directory", cmd: "sub", env: env, wantErrno: syscall.EACCES, wantPath: first + "/sub"},
		{name: "missing", cmd: "nosuchcmd", env: env, wantErrno: syscall.ENOENT, wantPath: "nosuchcmd"},
		{name: "path given", cmd: first + "/tool", env: env, want: first + "/tool"},
		{name: "path given, not executable", cmd: first + "/plain", env: env, wantErrno: syscall.EACCES, wantPath: first + "/plain"},
		{name: "path given, missing", cmd: first + "/nosuchcmd", env: env, wantErrno: syscall.ENOENT, wantPath: first + "/nosuchcmd"},
		{name: "path given, through a file", cmd: first + "/tool/x", env: env, wantErrno: syscall.ENOTDIR, wantPath: first + "/tool/x"},
		{name: "missing from a PATH with a file in it", cmd: "x", env: []string{"PATH=" + first + "/tool:" + second}, wantErrno: syscall.ENOENT, wantPath: "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.cmd, tc.env)
			if tc.wantErrno == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("lookPath(%q) = %q, %v; want %q", tc.cmd, got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.wantErrno) {
				t.Fatalf("lookPath(%q) = %q, %v; want %v", tc.cmd, got, err, tc.wantErrno)
			}
			// The child reports op and path from the stepError, and the
			// CLI's "command not found" names that path.
			var se *stepError
			if !errors.As(err, &se) || se.op != "exec" || se.path != tc.wantPath {
				t.Errorf("lookPath(%q) error = %#v, want a step exec %s", tc.cmd, err, tc.wantPath)
			}
		})
	}
}

func TestLookPathEmptyElementIsCwd(t *testing.T) {
	first, _ := pathDirs(t)
	t.Chdir(first)
	got, err := lookPath("tool", []string{"PATH=/nonexistent:"})
	if err != nil || got != "./tool" {
		t.Errorf("lookPath(tool) with an empty PATH element = %q, %v; want ./tool", got, err)
	}
}
