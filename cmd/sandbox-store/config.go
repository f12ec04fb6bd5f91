package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// config is $XDG_CONFIG_HOME/sandbox/images.toml:
//
//	# Registries tried, in order, for a name without one ("debian").
//	registries = ["docker.io", "quay.io"]
//	# Where the store lives; the CLI reads these and passes them as
//	# --root and --runroot (storeclient.StorePaths).
//	root = "/home/ada/.local/share/containers/storage"
//	runroot = "/run/user/1000/containers"
//	# How image roots are assembled; the CLI reads it (storeclient.Overlay).
//	overlay = "auto"
type config struct {
	Registries []string `toml:"registries"`
	Root       string   `toml:"root"`
	RunRoot    string   `toml:"runroot"`
	Overlay    string   `toml:"overlay"`
}

// ConfigError is a config file that cannot be read or has keys we do not
// know: a typo must not silently send pulls elsewhere.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func readConfig(path string) (config, error) {
	var c config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, &ConfigError{Path: path, Err: err}
	}
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return c, &ConfigError{Path: path, Err: err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return c, &ConfigError{Path: path, Err: fmt.Errorf("unknown key(s) %s", strings.Join(keys, ", "))}
	}
	for _, r := range c.Registries {
		if r == "" || strings.ContainsAny(r, "/ ") {
			return c, &ConfigError{Path: path, Err: fmt.Errorf("registry %q: want a host[:port]", r)}
		}
	}
	return c, nil
}
