package userns

import (
	"bytes"
	"encoding/binary"
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
	s.OCI.Process.User = specs.User{UID: 1000, GID: 100, AdditionalGids: []uint32{4, 27}}
	s.OCI.Process.NoNewPrivileges = true
	s.OCI.Mounts = append(s.OCI.Mounts, specs.Mount{Destination: "/m", Type: "tmpfs", Source: "tmpfs",
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}, GIDMappings: []specs.LinuxIDMapping{}})
	s.Rootfs = &spec.Rootfs{Lower: []string{"/l2", "/l1"}, Upper: "/u", Work: "/w", ReadOnly: true, Overlay: spec.OverlayAuto}
	got, err := decodeChildSpec(bytes.NewReader(EncodeSpec(s)))
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

// The child refuses what is not a whole spec from its parent, with an
// error that says so, and allocates no more than the frame holds.
func TestDecodeChildSpecRejects(t *testing.T) {
	good := EncodeSpec(&spec.Spec{OCI: specs.Spec{Process: &specs.Process{Args: []string{"true"}, Cwd: "/"}}})
	frame := func(payload []byte) []byte {
		b := append([]byte(specMagic), 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
		return append(b, payload...)
	}
	noProcess := EncodeSpec(&spec.Spec{OCI: specs.Spec{Hostname: "x"}})
	emptyCommand := EncodeSpec(&spec.Spec{OCI: specs.Spec{Process: &specs.Process{Args: []string{}, Cwd: "/"}}})
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"not a spec", []byte(`{"oci":{"process":{}}}`), "not a spec"},
		{"cut short", good[:len(good)-3], "unexpected EOF"},
		{"payload cut short", frame(good[8 : len(good)-3]), "ends early"},
		{"trailing bytes", frame(append(append([]byte{}, good[8:]...), 0)), "1 bytes after the spec"},
		{"huge count", frame([]byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}), "ends early"},
		{"huge frame", append([]byte(specMagic), 0xff, 0xff, 0xff, 0x7f), "more than"},
		{"bad flag", frame([]byte{7}), "flag 7"},
		{"no process", noProcess, "no process"},
		{"empty command", emptyCommand, "no process"},
	}
	for _, tc := range tests {
		_, err := decodeChildSpec(bytes.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "decode spec: ") {
			t.Errorf("%s: decodeChildSpec = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := decodeChildSpec(bytes.NewReader(good)); err != nil {
		t.Errorf("the good spec: %v", err)
	}
}

// Two specs back to back on the pipe, the speculative one first, are read
// one at a time.
func TestSpecsInSequence(t *testing.T) {
	s := &spec.Spec{OCI: specs.Spec{Process: &specs.Process{Args: []string{"true"}, Cwd: "/"}, Mounts: []specs.Mount{{Destination: "/w", Type: spec.MountBind, Source: "/w"}}}}
	run := EncodeSpec(s)
	ahead, ok, err := Speculation(run)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	r := bytes.NewReader(append(append([]byte{}, ahead...), run...))
	first, err := decodeNextSpec(r)
	if err != nil || !first.Speculative {
		t.Fatalf("first: %+v, %v", first, err)
	}
	second, err := decodeNextSpec(r)
	if err != nil || second.Speculative || second.OCI.Process.Args[0] != "true" || !sameRoot(first, second) {
		t.Fatalf("second: %+v, %v", second, err)
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
	encoded := EncodeSpec(s)
	b, ok, err := Speculation(encoded)
	if err != nil || !ok {
		t.Fatalf("Speculation = %v, %v", ok, err)
	}
	for _, secret := range []string{"s3cret", "deploy", "box"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the speculative spec carries %q: %s", secret, b)
		}
	}
	got, err := decodeNextSpec(bytes.NewReader(b))
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
	encoded = EncodeSpec(s)
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
