package userns

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/spec"
)

// The child reads exactly what the parent sends: every field the child
// stage acts on survives the trip through the spec pipe.
func TestChildSpecRoundTrip(t *testing.T) {
	s := &spec.Spec{
		OCI: specs.Spec{
			Hostname: "box",
			Process: &specs.Process{
				Args: []string{"true"}, Cwd: "/work", Env: []string{"PATH=/usr/bin"}, Terminal: true,
				ConsoleSize:  &specs.Box{Height: 33, Width: 111},
				Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Ambient: []string{"CAP_NET_RAW"}},
			},
			Mounts: []specs.Mount{{Destination: "/usr", Type: spec.MountBind, Source: "/usr", Options: []string{"rbind", "ro"}}},
			Linux: &specs.Linux{
				MaskedPaths:   []string{"/proc/kcore"},
				ReadonlyPaths: []string{"/proc/sys"},
				UIDMappings:   []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 1000, Size: 1}},
			},
		},
		Symlinks:    []spec.Symlink{{Target: "usr/bin", Path: "/bin"}},
		Interactive: true,
		Debug:       true,
		Seccomp:     []byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(newChildSpec(s)); err != nil {
		t.Fatal(err)
	}
	got, err := decodeChildSpec(&b)
	if err != nil {
		t.Fatal(err)
	}
	if want := newChildSpec(s); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the child's spec:\ngot  %+v\nwant %+v", got, want)
	}
	if got.OCI.Hostname != "box" || got.OCI.Linux.MaskedPaths[0] != "/proc/kcore" || !got.Interactive || len(got.Seccomp) != 8 {
		t.Errorf("fields lost: %+v", got)
	}
}

func TestDecodeChildSpecRejects(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", `{"oci":`, "unexpected EOF"},
		{"wrong type", `{"interactive":5}`, "cannot unmarshal number"},
		{"no process", `{"oci":{"hostname":"x"}}`, "no process"},
		{"empty command", `{"oci":{"process":{"args":[],"cwd":"/"}}}`, "no process"},
	}
	for _, tc := range tests {
		_, err := decodeChildSpec(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "decode spec: ") {
			t.Errorf("%s: decodeChildSpec(%s) = %v, want an error mentioning %q", tc.name, tc.in, err, tc.want)
		}
	}
}

func TestPrewarmSampleDecodes(t *testing.T) {
	s, err := decodeChildSpec(strings.NewReader(prewarmSample))
	if err != nil {
		t.Fatalf("the prewarm sample must decode like a real spec: %v", err)
	}
	if len(s.Symlinks) != 1 || s.Symlinks[0].Path != "/x" || len(s.OCI.Mounts) != 1 || s.OCI.Process.Capabilities == nil {
		t.Errorf("the prewarm sample left types untouched: %+v", s)
	}
}

// A speculative spec carries the root of the run it came from and nothing
// of that run's process: its arguments and environment must not reach
// the next sandbox's init.
func TestSpeculation(t *testing.T) {
	s := &spec.Spec{
		OCI: specs.Spec{
			Hostname: "box",
			Process:  &specs.Process{Args: []string{"deploy"}, Cwd: "/work", Env: []string{"TOKEN=s3cret"}},
			Mounts:   []specs.Mount{{Destination: "/work", Type: spec.MountBind, Source: "/home/u/work", Options: []string{"rbind"}}},
			Linux:    &specs.Linux{MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"}},
		},
		Symlinks: []spec.Symlink{{Target: "usr/bin", Path: "/bin"}},
		Seccomp:  []byte{1, 2, 3},
	}
	encoded, err := EncodeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	b, ok, err := Speculation(encoded)
	if err != nil || !ok {
		t.Fatalf("Speculation = %v, %v", ok, err)
	}
	for _, secret := range []string{"s3cret", "deploy", "box"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the speculative spec carries %q: %s", secret, b)
		}
	}
	got, err := decodeNextSpec(json.NewDecoder(bytes.NewReader(b)))
	if err != nil || !got.Speculative {
		t.Fatalf("decode the speculative spec: %+v, %v", got, err)
	}
	run, err := decodeChildSpec(bytes.NewReader(encoded))
	if err != nil {
		t.Fatal(err)
	}
	if !sameRoot(got, run) {
		t.Errorf("the speculative spec does not build the run's root:\n%s\n%s", b, encoded)
	}
	// Where the run's own spec is due, a speculative one is refused.
	if _, err := decodeChildSpec(bytes.NewReader(b)); err == nil {
		t.Error("decodeChildSpec took a speculative spec")
	}
	// A root of layers is not built ahead.
	s.Rootfs = &spec.Rootfs{Lower: []string{"/l"}}
	encoded, _ = EncodeSpec(s)
	if _, ok, err := Speculation(encoded); ok || err != nil {
		t.Errorf("Speculation of a layered root = %v, %v; want not ok", ok, err)
	}
}

// Any difference in what the root is built from makes it another root.
func TestSameRoot(t *testing.T) {
	base := func() *childSpec {
		c := &childSpec{Symlinks: []spec.Symlink{{Target: "usr/bin", Path: "/bin"}}}
		c.OCI.Mounts = []specs.Mount{
			{Destination: "/usr", Type: spec.MountBind, Source: "/usr", Options: []string{"rbind", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=1777"}},
		}
		c.OCI.Linux.MaskedPaths = []string{"/proc/kcore"}
		c.OCI.Linux.ReadonlyPaths = []string{"/proc/sys"}
		return c
	}
	if !sameRoot(base(), base()) {
		t.Fatal("equal specs differ")
	}
	changes := map[string]func(c *childSpec){
		"destination": func(c *childSpec) { c.OCI.Mounts[0].Destination = "/opt" },
		"type":        func(c *childSpec) { c.OCI.Mounts[1].Type = "proc" },
		"source":      func(c *childSpec) { c.OCI.Mounts[0].Source = "/srv" },
		"options":     func(c *childSpec) { c.OCI.Mounts[0].Options = []string{"rbind"} },
		"uid mapping": func(c *childSpec) { c.OCI.Mounts[0].UIDMappings = []specs.LinuxIDMapping{{Size: 1}} },
		"gid mapping": func(c *childSpec) { c.OCI.Mounts[0].GIDMappings = []specs.LinuxIDMapping{{Size: 1}} },
		"one more":    func(c *childSpec) { c.OCI.Mounts = append(c.OCI.Mounts, c.OCI.Mounts[0]) },
		"masked":      func(c *childSpec) { c.OCI.Linux.MaskedPaths = nil },
		"read-only":   func(c *childSpec) { c.OCI.Linux.ReadonlyPaths = append(c.OCI.Linux.ReadonlyPaths, "/x") },
		"symlink":     func(c *childSpec) { c.Symlinks[0].Target = "/usr/bin" },
		"layers":      func(c *childSpec) { c.Rootfs = &spec.Rootfs{Lower: []string{"/l"}} },
	}
	for name, change := range changes {
		c := base()
		change(c)
		if sameRoot(base(), c) || sameRoot(c, base()) {
			t.Errorf("%s changed and the root is the same", name)
		}
	}
	// sameRoot compares every field of a mount and a symlink; a field
	// added to either type needs a line there.
	if n := reflect.TypeOf(specs.Mount{}).NumField(); n != 6 {
		t.Errorf("specs.Mount has %d fields; sameRoot compares 6", n)
	}
	if n := reflect.TypeOf(spec.Symlink{}).NumField(); n != 2 {
		t.Errorf("spec.Symlink has %d fields; sameRoot compares 2 (by ==)", n)
	}
}
