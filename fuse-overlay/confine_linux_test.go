package fuseoverlay

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// A process started confined reads, writes and runs what its rules allow
// and nothing else; the starting process stays unconfined.
func TestStartConfined(t *testing.T) {
	allowed, denied, writable := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{allowed, denied} {
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("secret of "+filepath.Base(d)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `cat "$1/f" && echo read-allowed
cat "$2/f" 2>/dev/null && echo read-denied
echo x > "$2/new" 2>/dev/null && echo wrote-denied
echo x > "$3/new" && mkdir "$3/d" && mv "$3/new" "$3/d/new" && echo wrote-writable
exit 0`
	cmd := exec.Command("/bin/sh", "-c", script, "sh", allowed, denied, writable)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	rules := append(append([]Rule(nil), systemRules...), Rule{allowed, AccessRead}, Rule{writable, AccessWrite})
	done := make(chan error, 1)
	err := StartConfined(cmd, rules, func(err error) { done <- err })
	e2e.RequireX(t, !errors.Is(err, ErrNoLandlock), "Landlock: %v", err)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"read-allowed", "wrote-writable"} {
		if !strings.Contains(got, want) {
			t.Errorf("confined process could not do %s:\n%s", want, got)
		}
	}
	for _, bad := range []string{"read-denied", "wrote-denied", "secret of " + filepath.Base(denied)} {
		if strings.Contains(got, bad) {
			t.Errorf("confined process did %s:\n%s", bad, got)
		}
	}
	// The starting process is not confined.
	if _, err := os.ReadFile(filepath.Join(denied, "f")); err != nil {
		t.Errorf("the caller lost access: %v", err)
	}
}
