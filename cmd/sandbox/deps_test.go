package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// TestRunPathStaysLean guards the start-up budget: every package linked
// into the binary runs its init on every start, twice per sandbox, so the
// heavy image libraries (and storage's C constructor in pkg/unshare) must
// stay in the store helper. cgo is refused too: a dynamically linked
// binary starts about 3 ms slower.
func TestRunPathStaysLean(t *testing.T) {
	goBin := e2e.RequireTool(t, "go")
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}} {{if .CgoFiles}}cgo{{end}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/containers/image", "github.com/containers/storage",
		"go.podman.io/image", "go.podman.io/storage",
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		n++
		pkg, cgo, _ := strings.Cut(line, " ")
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("cmd/sandbox links %s; image and storage code belongs in the store helper", pkg)
			}
		}
		if cgo == "cgo" {
			t.Errorf("cmd/sandbox links %s, which needs cgo; the binary must build static", pkg)
		}
	}
	if n < 10 {
		t.Fatalf("go list -deps listed only %d packages:\n%s", n, out)
	}
}
