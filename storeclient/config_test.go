package storeclient

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStorePaths(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body      string
		root, runRoot   string
		wantConfigError bool
	}{
		{"both", "root = \"/srv/images\"\nrunroot = \"/run/user/1000/images\"\nregistries = [\"docker.io\"]\n", "/srv/images", "/run/user/1000/images", false},
		{"registries only", "registries = [\"quay.io\"]\n", "", "", false},
		{"relative root", "root = \"images\"\n", "", "", true},
		{"not toml", "root = [\n", "", "", true},
	}
	for _, tc := range tests {
		root, runRoot, err := StorePaths(write(tc.name+".toml", tc.body))
		var ce *ConfigError
		if tc.wantConfigError {
			if !errors.As(err, &ce) {
				t.Errorf("%s: %v, want a ConfigError", tc.name, err)
			}
			continue
		}
		if err != nil || root != tc.root || runRoot != tc.runRoot {
			t.Errorf("%s: %q, %q, %v; want %q, %q", tc.name, root, runRoot, err, tc.root, tc.runRoot)
		}
	}
	if root, runRoot, err := StorePaths(filepath.Join(dir, "missing.toml")); err != nil || root != "" || runRoot != "" {
		t.Errorf("missing file: %q, %q, %v", root, runRoot, err)
	}
}

func TestOverlay(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{"": "", "overlay = \"fuse\"\n": "fuse", "overlay = \"kernel\"\nroot = \"/srv\"\n": "kernel"} {
		p := filepath.Join(dir, "images.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := Overlay(p); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", body, got, err, want)
		}
	}
	p := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(p, []byte("overlay = \"btrfs\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *ConfigError
	if _, err := Overlay(p); !errors.As(err, &ce) || !strings.Contains(err.Error(), "btrfs") {
		t.Errorf("unknown overlay: %v, want a ConfigError naming it", err)
	}
}

func TestConfigPath(t *testing.T) {
	if got := ConfigPath("/xdg", "/home/ada"); got != "/xdg/sandbox/images.toml" {
		t.Errorf("with XDG_CONFIG_HOME: %s", got)
	}
	if got := ConfigPath("", "/home/ada"); got != "/home/ada/.config/sandbox/images.toml" {
		t.Errorf("without: %s", got)
	}
}
