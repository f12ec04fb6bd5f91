package testimage

import (
	"path/filepath"
	"testing"

	"sandbox/internal/e2e"
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
	e2e.RequireX(t, err == nil, "%v", err)
	l, err := BusyboxLayer(p)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	return Build(t, refName, BusyboxConfig(), l)
}
