package main

import (
	"bytes"
	"errors"
	"os/exec"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLines(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want []string
	}{
		{"no build info", nil, []string{"sandbox 1.2.3", "go: go1.26.8 linux/amd64"}},
		{"no vcs", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}}},
			[]string{"sandbox 1.2.3", "go: go1.26.8 linux/amd64"}},
		{"clean commit", &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "false"}}},
			[]string{"sandbox 1.2.3", "go: go1.26.8 linux/amd64", "commit: 0123abcd"}},
		{"modified tree", &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "0123abcd"}}},
			[]string{"sandbox 1.2.3", "go: go1.26.8 linux/amd64", "commit: 0123abcd (modified)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := versionLines("1.2.3", "go1.26.8", "linux/amd64", tt.bi)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("versionLines = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCmdVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr}
	code, err := cmdVersion(e, nil)
	if code != 0 || err != nil {
		t.Fatalf("cmdVersion = %d, %v", code, err)
	}
	want := "sandbox " + version + "\ngo: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("output %q, want it to start with %q", stdout.String(), want)
	}

	stdout.Reset()
	if code, err := cmdVersion(e, []string{"--help"}); code != 0 || !errors.Is(err, errHelp) || !strings.HasPrefix(stdout.String(), "Usage: sandbox version") {
		t.Errorf("version --help = %d, %v, %q", code, err, stdout.String())
	}
	var u *usageError
	if _, err := cmdVersion(e, []string{"--bogus"}); !errors.As(err, &u) || u.fix != "sandbox help version" {
		t.Errorf("version --bogus = %v", err)
	}
	if _, err := cmdVersion(e, []string{"extra"}); !errors.As(err, &u) {
		t.Errorf("version extra = %v", err)
	}
}

// TestVersionLdflags checks the documented way to stamp a release.
func TestVersionLdflags(t *testing.T) {
	bin := buildSandbox(t, "-ldflags", "-X main.version=9.8.7")
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("sandbox %q: %v", args, err)
		}
		if !strings.HasPrefix(string(out), "sandbox 9.8.7\ngo: go") {
			t.Errorf("sandbox %q printed %q", args, out)
		}
	}
}
