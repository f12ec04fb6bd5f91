package idmap

import (
	"os"
	"path/filepath"
	"testing"
)

// skipf skips a test whose prerequisite is missing here, visibly; under
// SANDBOX_TEST_STRICT=1 (CI) the missing prerequisite is a failure.
func skipf(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("SANDBOX_TEST_STRICT") == "1" {
		t.Fatalf("missing prerequisite (SANDBOX_TEST_STRICT=1): "+format, args...)
	}
	t.Skipf(format, args...)
}

// writeExec writes an executable file into dir.
func writeExec(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFile writes a plain file and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// systemPath is where distributions install shadow's helpers.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
