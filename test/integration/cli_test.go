package integration

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// Guards `sandbox doctor` on a machine set up as documented: every check
// passes and the exit code says so.
func TestDoctorOnSetUpMachine(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "doctor")
	e2e.WantExit(t, r, 0)
	if !strings.Contains(strings.ToLower(r.Stdout), "ok") {
		t.Errorf("doctor printed no %q\n%s", "ok", r)
	}
}

// Guards `sandbox info --format json`: machine-readable, and it says
// which id mapping a run would use.
func TestInfoJSON(t *testing.T) {
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "info", "--format", "json")
	e2e.WantExit(t, r, 0)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("info --format json is not a JSON object: %v\n%s", err, r)
	}
	idKey := regexp.MustCompile(`(?i)(id.?map|userns|uid.?map)`)
	if k := findKey(v, idKey); k == "" {
		t.Errorf("no key about id mapping in the JSON\n%s", r)
	}
}

// findKey returns the first key, at any depth, matching re.
func findKey(v any, re *regexp.Regexp) string {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if re.MatchString(k) {
				return k
			}
			if k := findKey(x, re); k != "" {
				return k
			}
		}
	case []any:
		for _, x := range v {
			if k := findKey(x, re); k != "" {
				return k
			}
		}
	}
	return ""
}

// Guards `sandbox version`.
func TestVersion(t *testing.T) {
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "version")
	e2e.WantExit(t, r, 0)
	if !strings.HasPrefix(r.Stdout, "sandbox ") {
		t.Errorf("version output %q does not start with %q", r.Stdout, "sandbox ")
	}
}

// Guards --debug and --profile default: the run still succeeds, and
// --debug (only --debug) writes stage lines to stderr.
func TestDebugAndDefaultProfile(t *testing.T) {
	e2e.RequireUnprivileged(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--profile", "default", "--", "sh", "-c", "echo ran")
	e2e.WantExit(t, r, 0)
	if r.Stdout != "ran\n" || r.Stderr != "" {
		t.Errorf("--profile default: want only the command's output\n%s", r)
	}
	r = e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--debug", "--", "sh", "-c", "echo ran")
	e2e.WantExit(t, r, 0)
	if r.Stdout != "ran\n" {
		t.Errorf("--debug changed the command's stdout\n%s", r)
	}
	if len(e2e.Lines(r.Stderr)) < 2 {
		t.Errorf("--debug: want stage lines on stderr\n%s", r)
	}
}
