package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// The harness (finding or building the binary, running it, checking a
// run) is sandbox/internal/e2e, shared with test/integration; what only the
// attack tests need is here.

func TestMain(m *testing.M) {
	os.Exit(e2e.Main(m, "security", "sandbox-sectest-", attacker))
}

// attacker is the attacker program, built from testdata/try.
var attacker = &e2e.Helper{Dir: "testdata/try"}

// tryIn copies the attacker into dir (a work directory the sandbox binds
// read-write at the same path) and returns its path there.
func tryIn(t *testing.T, dir string) string {
	t.Helper()
	e2e.RequireX(t, attacker.Bin != "", "attacker helper: %v", attacker.Err)
	p := filepath.Join(dir, "try")
	e2e.CopyFile(t, attacker.Bin, p, 0o755)
	return p
}

// tryResults parses the "TOKEN RESULT [DETAIL]" lines of try into
// TOKEN -> "RESULT" and TOKEN -> "DETAIL".
func tryResults(out string) (res, detail map[string]string) {
	res, detail = map[string]string{}, map[string]string{}
	for _, l := range e2e.Lines(out) {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 {
			continue
		}
		res[f[0]] = f[1]
		if len(f) == 3 {
			detail[f[0]] = f[2]
		}
	}
	return res, detail
}
