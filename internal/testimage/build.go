package testimage

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BusyboxConfig is the config BuildBusybox gives the busybox image: a
// shell by default, a PATH that finds the applets.
func BusyboxConfig() Config {
	return Config{
		Cmd:        []string{"/bin/sh"},
		Env:        []string{"PATH=/bin", "HOME=/root"},
		WorkingDir: "/",
		Labels:     map[string]string{"org.opencontainers.image.title": "testimage busybox"},
	}
}

// Build writes an image of layers into a new layout under t.TempDir(),
// tagged refName, and returns the layout's directory. It fails the test on
// error.
func Build(t testing.TB, refName string, cfg Config, layers ...Layer) (layoutDir string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := WriteLayout(dir, refName, cfg, layers...); err != nil {
		t.Fatalf("testimage: %v", err)
	}
	return dir
}

// BuildBusybox is Build of the busybox image (BusyboxLayer with
// BusyboxConfig). A machine without a static busybox is a missing
// prerequisite: the test is skipped, or fails under SANDBOX_TEST_STRICT=1.
func BuildBusybox(t testing.TB, refName string) (layoutDir string) {
	t.Helper()
	p, err := FindBusybox()
	require(t, err == nil, "%v", err)
	l, err := BusyboxLayer(p)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	return Build(t, refName, BusyboxConfig(), l)
}

// require skips the test when a prerequisite is missing, or fails it under
// SANDBOX_TEST_STRICT=1, the project's rule for host tools (STYLE.md,
// Tests). The variable is read on each call rather than kept in a
// package variable.
func require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SANDBOX_TEST_STRICT") == "1" {
		t.Fatalf("prerequisite missing (SANDBOX_TEST_STRICT=1): %s", msg)
	}
	t.Skipf("prerequisite missing: %s (set SANDBOX_TEST_STRICT=1 to make this a failure)", msg)
}
