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
