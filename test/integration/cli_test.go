package integration

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// Guards `sandbox doctor` on a machine set up as documented: every check
// passes and the exit code says so.
func TestDoctorOnSetUpMachine(t *testing.T) {
	requireUnprivileged(t)
	requireSubIDs(t)
	r := runSandbox(t, runOpts{}, "doctor")
	wantExit(t, r, 0)
	if !strings.Contains(strings.ToLower(r.stdout), "ok") {
		t.Errorf("doctor printed no %q\n%s", "ok", r)
	}
}

// Guards `sandbox info --format json`: machine-readable, and it says
// which id mapping a run would use.
func TestInfoJSON(t *testing.T) {
	r := runSandbox(t, runOpts{}, "info", "--format", "json")
	wantExit(t, r, 0)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
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
	r := runSandbox(t, runOpts{}, "version")
	wantExit(t, r, 0)
	if !strings.HasPrefix(r.stdout, "sandbox ") {
		t.Errorf("version output %q does not start with %q", r.stdout, "sandbox ")
	}
}

// Guards --debug and --profile default: the run still succeeds, and
// --debug (only --debug) writes stage lines to stderr.
func TestDebugAndDefaultProfile(t *testing.T) {
	requireUnprivileged(t)
	r := runSandbox(t, runOpts{}, "run", "--profile", "default", "--", "sh", "-c", "echo ran")
	wantExit(t, r, 0)
	if r.stdout != "ran\n" || r.stderr != "" {
		t.Errorf("--profile default: want only the command's output\n%s", r)
	}
	r = runSandbox(t, runOpts{}, "run", "--debug", "--", "sh", "-c", "echo ran")
	wantExit(t, r, 0)
	if r.stdout != "ran\n" {
		t.Errorf("--debug changed the command's stdout\n%s", r)
	}
	if len(lines(r.stderr)) < 2 {
		t.Errorf("--debug: want stage lines on stderr\n%s", r)
	}
}
