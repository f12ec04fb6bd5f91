package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// DefaultTimeout bounds every run of the binary: no test may hang, even
// when the sandbox under test does.
const DefaultTimeout = 30 * time.Second

var (
	// Bin is the absolute path of the binary under test; Main sets it.
	Bin string
	// Strict turns a missing prerequisite into a failure (CI sets it).
	Strict = os.Getenv("SANDBOX_TEST_STRICT") == "1"
)

// Main is the body of a suite's TestMain; it returns the exit code for
// os.Exit. It makes a temporary directory named after tmpPrefix, sets Bin
// to $SANDBOX_BIN made absolute or, without it, builds ../../cmd/sandbox
// (relative to the suite's directory) into the temporary directory, builds
// the suite's helpers there, runs the tests and removes the directory.
// Its own messages start with the suite's name ("integration: ...").
func Main(m *testing.M, suite, tmpPrefix string, helpers ...*Helper) int {
	tmp, err := os.MkdirTemp("", tmpPrefix)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if bin := os.Getenv("SANDBOX_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: SANDBOX_BIN: %v\n", suite, err)
			return 1
		}
		Bin = abs
	} else {
		Bin = filepath.Join(tmp, "sandbox")
		if out, err := GoBuild(".", Bin, "../../cmd/sandbox"); err != nil {
			fmt.Fprintf(os.Stderr, "%s: building the binary (set SANDBOX_BIN to use a built one): %v\n%s", suite, err, out)
			return 1
		}
	}

	for _, h := range helpers {
		h.build(tmp)
	}
	// The suite's runs share a run-time directory of their own, so the
	// pre-spawners they start are the suite's, and are stopped with it.
	run := filepath.Join(tmp, "xdg-run")
	if err := os.Mkdir(run, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		return 1
	}
	os.Setenv("XDG_RUNTIME_DIR", run)
	code := m.Run()
	if err := StopPrespawners(run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		code = 1
	}
	return code
}

// GoBuild runs a static `go build` in dir.
func GoBuild(dir, out, pkg string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// Helper is a program of a suite's own that its tests run (inside the
// sandbox, say). It lives in a testdata directory that is a module of its
// own, so that building it needs only the standard library, also as a user
// without the main module's cache. Main builds it, static, before the
// tests run; a test that needs it checks Bin and passes Err to RequireX.
type Helper struct {
	Dir string // the module's directory, relative to the suite's
	Bin string // the built program; "" when it could not be built
	Err error  // why it could not be built
}

// build builds h into tmp, under its directory's base name.
func (h *Helper) build(tmp string) {
	bin := filepath.Join(tmp, filepath.Base(h.Dir))
	if out, err := GoBuild(h.Dir, bin, "."); err != nil {
		h.Err = fmt.Errorf("building %s: %v: %s", h.Dir, err, bytes.TrimSpace(out))
	} else {
		h.Bin = bin
	}
}

// RequireX stops a test whose prerequisite is missing: a skip that names
// the reason, or, under SANDBOX_TEST_STRICT=1, a failure. Skips never stay
// quiet on CI.
func RequireX(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if Strict {
		t.Fatalf("prerequisite missing (SANDBOX_TEST_STRICT=1): %s", msg)
	}
	t.Skipf("prerequisite missing: %s (set SANDBOX_TEST_STRICT=1 to make this a failure)", msg)
}

// RequireUnprivileged: the end-to-end tests are about what an ordinary
// user gets, and the attacks are an ordinary user's; as root they would
// test something else.
func RequireUnprivileged(t *testing.T) {
	t.Helper()
	RequireX(t, os.Geteuid() != 0, "running as root; run the suite as an unprivileged user with subordinate ids (CI: sandbox-test)")
}

// RequireTool returns the path of a host tool the test drives.
func RequireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	RequireX(t, err == nil, "%s not found on PATH (%v)", name, err)
	return p
}
