package seccomp

import (
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func errnoPtr(e uint) *uint { return &e }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		json string
		// want is checked when the profile is valid.
		want *specs.LinuxSeccomp
		// path, value and reason (a substring) when it is not.
		path, value, reason string
	}{
		{
			name: "minimal",
			json: `{"defaultAction": "SCMP_ACT_ALLOW"}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow},
		},
		{
			name: "rules, arguments, errno, architectures",
			json: `{
				"defaultAction": "SCMP_ACT_ERRNO",
				"defaultErrnoRet": 38,
				"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
				"syscalls": [
					{"names": ["read", "write", "socketcall"], "action": "SCMP_ACT_ALLOW"},
					{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
					 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
					{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
					 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
					{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
					{"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
					{"names": ["kill"], "action": "SCMP_ACT_LOG"}
				]
			}`,
			want: &specs.LinuxSeccomp{
				DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoPtr(38),
				Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"read", "write", "socketcall"}, Action: specs.ActAllow},
					{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
					{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 2114060288, Op: specs.OpMaskedEqual}}},
					{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(1)},
					{Names: []string{"ptrace"}, Action: specs.ActKillProcess},
					{Names: []string{"kill"}, Action: specs.ActLog},
				},
			},
		},
		{
			name: "a name only other architectures have",
			json: `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["arm_fadvise64_64", "cacheflush"], "action": "SCMP_ACT_ALLOW"}]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"arm_fadvise64_64", "cacheflush"}, Action: specs.ActAllow}}},
		},
		{
			name: "TSYNC is redundant and accepted",
			json: `{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC"]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"}},
		},
		{name: "empty", json: ``, reason: "empty file"},
		{name: "not JSON", json: `defaultAction: allow`, path: "line 1 column 1", reason: "invalid character"},
		{name: "cut short", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [`, reason: "ends early"},
		{name: "syntax error on line 3", json: "{\n\"defaultAction\": \"SCMP_ACT_ALLOW\",\n\"syscalls\": [}\n", path: "line 3 column 14", reason: "invalid character"},
		{name: "two documents", json: `{"defaultAction": "SCMP_ACT_ALLOW"} {}`, reason: "after the profile"},
		{name: "wrong type", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}`, path: "syscalls.names", value: "string", reason: "wrong type"},
		{name: "negative index", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": -1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}`, path: "syscalls.args.index", value: "number -1", reason: "wrong type"},
		{name: "unknown top-level field", json: `{"defaultAction": "SCMP_ACT_ALLOW", "defaultErno": 1}`, value: "defaultErno", reason: "unknown field"},
		{name: "unknown field in a rule", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "read", "action": "SCMP_ACT_ALLOW"}]}`, value: "name", reason: "unknown field"},
		{name: "docker/podman source profile", json: `{"defaultAction": "SCMP_ACT_ERRNO", "archMap": []}`, value: "archMap", reason: "docker/podman source profile"},
		{name: "source profile includes", json: `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {}}]}`, value: "includes", reason: "docker/podman source profile"},
		{name: "no default action", json: `{"syscalls": []}`, path: "defaultAction", reason: "missing action"},
		{name: "unknown default action", json: `{"defaultAction": "SCMP_ACT_DENY"}`, path: "defaultAction", value: "SCMP_ACT_DENY", reason: "unknown action"},
		{name: "notify", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}`, path: "syscalls[0].action", value: "SCMP_ACT_NOTIFY", reason: "not supported"},
		{name: "listener", json: `{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock"}`, path: "listenerPath", value: "/run/l.sock", reason: "not supported"},
		{name: "flag", json: `{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}`, path: "flags[0]", value: "SECCOMP_FILTER_FLAG_LOG", reason: "not supported"},
		{name: "unknown flag", json: `{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_NEW"]}`, path: "flags[1]", value: "SECCOMP_FILTER_FLAG_NEW", reason: "unknown flag"},
		{name: "errno too large", json: `{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}`, path: "defaultErrnoRet", value: "4096", reason: "at most 4095"},
		{name: "errno on allow", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}`, path: "syscalls[0].errnoRet", value: "1", reason: "take an errno"},
		{name: "unknown architecture", json: `{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AMD64"]}`, path: "architectures[0]", value: "SCMP_ARCH_AMD64", reason: "unknown architecture"},
		{name: "no names", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}`, path: "syscalls[0].names", reason: "at least one"},
		{name: "misspelt name", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", "opne"], "action": "SCMP_ACT_ERRNO"}]}`, path: "syscalls[0].names[1]", value: "opne", reason: "not a system call on any"},
		{name: "uppercase name", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["Read"], "action": "SCMP_ACT_ERRNO"}]}`, path: "syscalls[0].names[0]", value: "Read", reason: "not a system call name"},
		{name: "empty name", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]}`, path: "syscalls[0].names[0]", reason: "empty"},
		{name: "argument 6", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}`, path: "syscalls[0].args[0].index", value: "6", reason: "0 to 5"},
		{name: "unknown operator", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_MASKED_NE"}]}]}`, path: "syscalls[0].args[0].op", value: "SCMP_CMP_MASKED_NE", reason: "unknown operator"},
		{name: "valueTwo outside MASKED_EQ", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]}]}`, path: "syscalls[0].args[0].valueTwo", value: "2", reason: "only SCMP_CMP_MASKED_EQ"},
		{name: "64-bit value for ioctl's request", json: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 4294988818, "op": "SCMP_CMP_EQ"}]}]}`, path: "syscalls[0].args[0]", value: "0x100005412", reason: "32-bit to the kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.json))
			if tt.want != nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %+v\nwant %+v", got, tt.want)
				}
				if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
					if _, err := Compile(got); err != nil {
						t.Fatalf("Compile: %v", err)
					}
				}
				return
			}
			var pe *ProfileError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v (%T), want a *ProfileError", err, err)
			}
			if pe.Path != tt.path || pe.Value != tt.value || !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("got Path %q Value %q Reason %q, want %q, %q, ...%q...", pe.Path, pe.Value, pe.Reason, tt.path, tt.value, tt.reason)
			}
			t.Log(err)
		})
	}
}

// TestParseDefault round-trips the default profile through its JSON, the
// form it is recorded in.
func TestParseDefault(t *testing.T) {
	for _, o := range []Options{{}, {AllowNestedUserns: true}} {
		b, err := json.Marshal(Default(o))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(b)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if !reflect.DeepEqual(p, Default(o)) {
			t.Errorf("%+v: the default profile changed in JSON", o)
		}
	}
}

func TestProfileErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  ProfileError
		want string
	}{
		{ProfileError{Path: "syscalls[2].action", Value: "SCMP_ACT_FOO", Reason: "unknown action"}, `syscalls[2].action "SCMP_ACT_FOO": unknown action`},
		{ProfileError{Value: "archMap", Reason: "unknown field"}, `"archMap": unknown field`},
		{ProfileError{Reason: "empty file, expected a JSON object"}, `empty file, expected a JSON object`},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
