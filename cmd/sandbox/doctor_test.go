package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sandbox/preflight"
)

var sampleChecks = []preflight.Check{
	{Name: "userns", OK: true, Required: true, Detail: "a user namespace can be created"},
	{Name: "userns-mount", Required: true, Detail: "mounting inside a user namespace failed: tmpfs: operation not permitted",
		Fixes: []string{"sudo fix-one", "sudo fix-two"}},
	{Name: "pasta", Detail: "not found on PATH (user-mode networking)", Fixes: []string{"sudo apt-get install passt"}},
	{Name: "linger", Detail: "systemd is not PID 1 on this host"},
}

func TestDoctorText(t *testing.T) {
	tests := []struct {
		name   string
		checks []preflight.Check
		want   string
		code   int
	}{
		{
			name:   "a problem and warnings",
			checks: sampleChecks,
			code:   1,
			want: `ok       userns: a user namespace can be created
problem  userns-mount: mounting inside a user namespace failed: tmpfs: operation not permitted
  fix: sudo fix-one
  or:  sudo fix-two
warning  pasta: not found on PATH (user-mode networking)
  fix: sudo apt-get install passt
warning  linger: systemd is not PID 1 on this host
sandbox run cannot work here: 1 problem, 2 warnings
`,
		},
		{
			name:   "warnings only",
			checks: []preflight.Check{sampleChecks[0], sampleChecks[3]},
			want: `ok       userns: a user namespace can be created
warning  linger: systemd is not PID 1 on this host
sandbox run works here; 1 warning: what they name is unavailable until fixed
`,
		},
		{
			name:   "all good",
			checks: sampleChecks[:1],
			want: `ok       userns: a user namespace can be created
sandbox run works here; all 1 checks passed
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := reportDoctor(&out, "text", tt.checks)
			if err != nil || code != tt.code {
				t.Errorf("reportDoctor = %d, %v; want %d, nil", code, err, tt.code)
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestDoctorJSON(t *testing.T) {
	var out bytes.Buffer
	code, err := reportDoctor(&out, "json", sampleChecks)
	if err != nil || code != 1 {
		t.Fatalf("reportDoctor = %d, %v; want 1, nil", code, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if doc["ok"] != false || doc["problems"] != 1.0 || doc["warnings"] != 2.0 {
		t.Errorf("ok, problems, warnings = %v, %v, %v", doc["ok"], doc["problems"], doc["warnings"])
	}
	checks, _ := doc["checks"].([]any)
	if len(checks) != len(sampleChecks) {
		t.Fatalf("checks = %v", doc["checks"])
	}
	first := checks[0].(map[string]any)
	var keys []string
	for k := range first {
		keys = append(keys, k)
	}
	for _, k := range []string{"name", "ok", "required", "detail", "fixes"} {
		if _, ok := first[k]; !ok {
			t.Errorf("check lacks key %q: %v", k, keys)
		}
	}
	if fixes, ok := first["fixes"].([]any); !ok || len(fixes) != 0 {
		t.Errorf("fixes of an OK check = %#v, want []", first["fixes"])
	}
	var round doctorJSON
	if err := json.Unmarshal(out.Bytes(), &round); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(round.Checks[1], sampleChecks[1]) {
		t.Errorf("round trip = %+v, want %+v", round.Checks[1], sampleChecks[1])
	}
}

func TestReportFlags(t *testing.T) {
	for _, name := range []string{"doctor", "info"} {
		run := map[string]func(*env, []string) (int, error){"doctor": cmdDoctor, "info": cmdInfo}[name]
		tests := []struct {
			args    []string
			help    bool
			errText string
		}{
			{args: []string{"--help"}, help: true},
			{args: []string{"-h"}, help: true},
			{args: []string{"--format", "yaml"}, errText: `invalid --format "yaml": want text or json`},
			{args: []string{"--bogus"}, errText: "unknown flag: --bogus"},
			{args: []string{"extra"}, errText: name + ` takes no arguments, got "extra"`},
		}
		for _, tt := range tests {
			var stdout, stderr bytes.Buffer
			e := &env{stdout: &stdout, stderr: &stderr}
			code, err := run(e, tt.args)
			if tt.help {
				if !errors.Is(err, errHelp) || code != 0 || !strings.HasPrefix(stdout.String(), "Usage: sandbox "+name) ||
					!strings.Contains(stdout.String(), "--format") {
					t.Errorf("%s %q = %d, %v, stdout %q", name, tt.args, code, err, stdout.String())
				}
				continue
			}
			var u *usageError
			if !errors.As(err, &u) || u.msg != tt.errText || u.fix != "sandbox help "+name {
				t.Errorf("%s %q = %v (%#v), want usage error %q", name, tt.args, err, err, tt.errText)
			}
		}
	}
}

// buildSandbox builds this command, as a user would get it, with extra go
// build arguments.
func buildSandbox(t *testing.T, extra ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("SANDBOX_TEST_STRICT") == "1" {
			t.Fatalf("SANDBOX_TEST_STRICT=1 and no go toolchain: %v", err)
		}
		t.Skipf("no go toolchain to build sandbox: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sandbox")
	args := append([]string{"build", "-o", bin}, extra...)
	cmd := exec.Command(gobin, append(args, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDoctorBinary runs the real probes through the built binary: they
// re-exec it with the hidden probe command, which main must dispatch.
func TestDoctorBinary(t *testing.T) {
	bin := buildSandbox(t)
	cmd := exec.Command(bin, "doctor", "--format", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var doc doctorJSON
	if jerr := json.Unmarshal(out, &doc); jerr != nil {
		t.Fatalf("doctor --format json: %v, %v\n%s\n%s", err, jerr, out, stderr.String())
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if (code == 0) != doc.OK {
		t.Errorf("exit status %d with ok=%v", code, doc.OK)
	}
	byName := map[string]preflight.Check{}
	for _, c := range doc.Checks {
		byName[c.Name] = c
		t.Logf("%-8s %s: %s", verdict(c), c.Name, c.Detail)
	}
	for _, name := range []string{"userns", "userns-mount", "overlay"} {
		c, ok := byName[name]
		if !ok {
			t.Fatalf("no %s check", name)
		}
		if strings.Contains(c.Detail, "unknown command") || strings.Contains(c.Detail, "probe reported no result") {
			t.Errorf("%s: the probe did not reach preflight.ProbeMain: %s", name, c.Detail)
		}
		if !c.OK {
			if os.Getenv("SANDBOX_TEST_STRICT") == "1" {
				t.Errorf("%s fails on this host: %s", name, c.Detail)
			} else {
				t.Logf("%s fails on this host: %s", name, c.Detail)
			}
		}
	}
	if !doc.OK && os.Getenv("SANDBOX_TEST_STRICT") == "1" {
		t.Errorf("doctor reports problems on a host CI expects to work")
	}
}
