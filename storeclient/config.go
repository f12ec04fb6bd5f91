package storeclient

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// ConfigPath is the image configuration file, $XDG_CONFIG_HOME/sandbox/
// images.toml (~/.config/sandbox/images.toml). The store helper reads all
// of it strictly; the CLI reads the store's place from it:
//
//	root = "/home/ada/.local/share/containers/storage"   # podman's store
//	runroot = "/run/user/1000/containers"
//	registries = ["docker.io"]
//	overlay = "auto"   # or "kernel", "fuse"
func ConfigPath(xdgConfigHome, home string) string {
	if !filepath.IsAbs(xdgConfigHome) {
		xdgConfigHome = filepath.Join(home, ".config")
	}
	return filepath.Join(xdgConfigHome, "sandbox", "images.toml")
}

// ConfigError is a configuration file that cannot be used.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// StorePaths reads root and runroot from the configuration file at path;
// a missing file or key is "". Paths must be absolute.
func StorePaths(path string) (root, runRoot string, err error) {
	c, err := readConfig(path)
	return c.Root, c.RunRoot, err
}

// Overlay reads overlay from the configuration file at path: "kernel",
// "fuse", "auto", or "" when the file or key is missing.
func Overlay(path string) (string, error) {
	c, err := readConfig(path)
	return c.Overlay, err
}

// fileConfig is what the CLI reads of the configuration file.
type fileConfig struct {
	Root    string `toml:"root"`
	RunRoot string `toml:"runroot"`
	Overlay string `toml:"overlay"`
}

func readConfig(path string) (fileConfig, error) {
	var c fileConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, &ConfigError{Path: path, Err: err}
	}
	if err := toml.Unmarshal(b, &c); err != nil {
		return fileConfig{}, &ConfigError{Path: path, Err: err}
	}
	for k, v := range map[string]string{"root": c.Root, "runroot": c.RunRoot} {
		if v != "" && !filepath.IsAbs(v) {
			return fileConfig{}, &ConfigError{Path: path, Err: fmt.Errorf("%s %q: want an absolute path", k, v)}
		}
	}
	switch c.Overlay {
	case "", "kernel", "fuse", "auto":
	default:
		return fileConfig{}, &ConfigError{Path: path, Err: fmt.Errorf("overlay %q: want kernel, fuse or auto", c.Overlay)}
	}
	return c, nil
}

// ResolveStore fills in root and runRoot left empty by flags: from the
// configuration file, else the defaults.
func ResolveStore(root, runRoot string, uid int) (string, string, error) {
	home := os.Getenv("HOME")
	if root == "" || runRoot == "" {
		cr, crr, err := StorePaths(ConfigPath(os.Getenv("XDG_CONFIG_HOME"), home))
		if err != nil {
			return "", "", err
		}
		if root == "" {
			root = cr
		}
		if runRoot == "" {
			runRoot = crr
		}
	}
	var err error
	if root == "" {
		if root, err = DefaultRoot(os.Getenv("XDG_DATA_HOME"), home); err != nil {
			return "", "", err
		}
	}
	if runRoot == "" {
		if runRoot, err = DefaultRunRoot(uid, os.Getenv("XDG_RUNTIME_DIR")); err != nil {
			return "", "", err
		}
	}
	return root, runRoot, nil
}
