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
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", &ConfigError{Path: path, Err: err}
	}
	var c struct {
		Root    string `toml:"root"`
		RunRoot string `toml:"runroot"`
	}
	if err := toml.Unmarshal(b, &c); err != nil {
		return "", "", &ConfigError{Path: path, Err: err}
	}
	for k, v := range map[string]string{"root": c.Root, "runroot": c.RunRoot} {
		if v != "" && !filepath.IsAbs(v) {
			return "", "", &ConfigError{Path: path, Err: fmt.Errorf("%s %q: want an absolute path", k, v)}
		}
	}
	return c.Root, c.RunRoot, nil
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
