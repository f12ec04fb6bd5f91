package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containers/image/v5/docker"

	"sandbox/image"
)

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "images.toml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if c, err := readConfig(filepath.Join(dir, "missing.toml")); err != nil || c.Registries != nil {
		t.Errorf("missing file: %+v, %v; want the zero config", c, err)
	}
	c, err := readConfig(write("# search list\nregistries = [\"quay.io\", \"registry.example.com:5000\"]\n"))
	if err != nil || strings.Join(c.Registries, ",") != "quay.io,registry.example.com:5000" {
		t.Errorf("readConfig = %+v, %v", c, err)
	}
	c, err = readConfig(write("registries = []\n"))
	if err != nil || c.Registries == nil || len(c.Registries) != 0 {
		t.Errorf("an empty list must stay an empty list (not the default): %+v, %v", c, err)
	}
	for _, bad := range []string{"registrys = [\"x\"]\n", "registries = \"docker.io\"\n", "registries = [\"a/b\"]\n", "registries = [\"\"]\n", "[[x\n"} {
		var ce *ConfigError
		if _, err := readConfig(write(bad)); !errors.As(err, &ce) {
			t.Errorf("readConfig(%q) = %v, want a *ConfigError", bad, err)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		kind string
	}{
		{&usageError{msg: "x"}, "usage"},
		{&image.RefError{Ref: "A", Reason: "r"}, "reference"},
		{&image.NoRegistriesError{Ref: "a"}, "no-registries"},
		{&image.NotFoundError{Name: "a"}, "not-found"},
		{fmt.Errorf("copy: %w", &image.LayerError{Layer: "sha256:1", Entry: "e", Reason: "r"}), "layer-rejected"},
		{&image.DigestError{Expected: "a", Actual: "b"}, "digest-mismatch"},
		{&image.PullError{Ref: "a", Tried: []string{"x/a"}, Err: errors.New("manifest unknown")}, "pull"},
		{&image.AuthError{Registry: "r", Err: docker.ErrUnauthorizedForCredentials{Err: errors.New("no")}}, "auth"},
		{&image.NotLoggedInError{Registry: "r"}, "not-logged-in"},
		{&image.InUseError{Name: "a", Containers: []string{"c"}}, "in-use"},
		{&image.ContainerNotFoundError{ID: "c"}, "container-not-found"},
		{&image.FormatError{Format: "zip"}, "format"},
		{&ConfigError{Path: "p", Err: errors.New("bad")}, "config"},
		{&image.StoreError{Root: "/r", Err: errors.New("bad")}, "store"},
		{&fs.PathError{Op: "open", Path: "/f", Err: syscall.ENOENT}, "file"},
		{fmt.Errorf("push: %w", syscall.ECONNREFUSED), "registry"},
		{errors.New("something else"), "internal"},
	}
	for _, tc := range tests {
		if got := classify(tc.err); got.Kind != tc.kind || got.Message == "" {
			t.Errorf("classify(%v) = %+v, want kind %s", tc.err, got, tc.kind)
		}
	}
	pe := classify(&image.PullError{Ref: "a", Err: errors.New(`Get "https://h/v2/": http: server gave HTTP response to HTTPS client`)})
	if pe.Cause != "http" {
		t.Errorf("plain HTTP registry: cause %q, want http", pe.Cause)
	}
	ae := classify(&image.AuthError{Registry: "r", Err: docker.ErrUnauthorizedForCredentials{Err: errors.New("no")}})
	if ae.Cause != "unauthorized" {
		t.Errorf("refused credentials: cause %q, want unauthorized", ae.Cause)
	}
}

// The contract's failures: JSON on stdout and exit status 2 for the
// helper's own usage errors, 1 for the command's. Malformed references
// fail before the store is opened (here: --root points nowhere usable).
func TestRunAnswers(t *testing.T) {
	tests := []struct {
		args []string
		code int
		kind string
	}{
		{[]string{}, 2, "usage"},
		{[]string{"--root", "/r", "--runroot", "/rr", "frobnicate"}, 2, "usage"},
		{[]string{"--root", "/r", "--runroot", "/rr", "pull"}, 2, "usage"},
		{[]string{"--root", "/r", "--runroot", "/rr", "pull", "--registry", "docker.io", "Upper/Case"}, 1, "reference"},
		{[]string{"--root", "/r", "--runroot", "/rr", "load"}, 2, "usage"},
		{[]string{"images"}, 2, "usage"}, // no --root
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, nil, &stdout, &stderr)
		var answer struct {
			Error *errorAnswer `json:"error"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &answer); err != nil || answer.Error == nil {
			t.Errorf("run(%q): stdout %q is no error answer (%v)", tc.args, stdout.String(), err)
			continue
		}
		if code != tc.code || answer.Error.Kind != tc.kind {
			t.Errorf("run(%q) = %d, %+v; want %d and kind %s", tc.args, code, answer.Error, tc.code, tc.kind)
		}
	}
}
