package userns

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/spec"
)

// childSpec is the part of spec.Spec the child stage reads, sent down the
// spec pipe in the form of speccodec.go. The parent validated the full
// Spec before sending it.
type childSpec struct {
	OCI struct {
		Process  *specs.Process
		Hostname string
		Mounts   []specs.Mount
		Linux    struct {
			MaskedPaths   []string
			ReadonlyPaths []string
		}
	}
	Symlinks    []spec.Symlink
	Interactive bool
	Debug       bool
	Seccomp     []byte
	Rootfs      *spec.Rootfs
	// Speculative marks the spec of an earlier run, without its process,
	// that a pre-spawned init builds the root of while it waits for its
	// own spec (see prebuilt).
	Speculative bool
	// TimerSlack is the caller's timer slack (ns), which the command gets
	// back: the init starts with a coarse one (helperTimerSlack).
	TimerSlack uint64
}

// newChildSpec takes the child's part of a validated Spec.
func newChildSpec(s *spec.Spec) *childSpec {
	c := &childSpec{Symlinks: s.Symlinks, Interactive: s.Interactive, Debug: s.Debug, Seccomp: s.Seccomp, Rootfs: s.Rootfs, TimerSlack: ownTimerSlack()}
	c.OCI.Process = s.OCI.Process
	c.OCI.Hostname = s.OCI.Hostname
	c.OCI.Mounts = s.OCI.Mounts
	if s.OCI.Linux != nil {
		c.OCI.Linux.MaskedPaths = s.OCI.Linux.MaskedPaths
		c.OCI.Linux.ReadonlyPaths = s.OCI.Linux.ReadonlyPaths
	}
	return c
}

// EncodeSpec is what the child reads of s, as sent down the spec pipe
// (speccodec.go).
func EncodeSpec(s *spec.Spec) []byte {
	return encodeChildSpec(newChildSpec(s))
}

func decodeChildSpec(r io.Reader) (*childSpec, error) {
	s, err := decodeNextSpec(r)
	if err == nil && s.Speculative {
		return nil, fmt.Errorf("decode spec: a speculative spec where the run's own was due")
	}
	return s, err
}

// decodeNextSpec reads the next spec on the pipe: a run's own, or a
// speculative one (which has no process) before it.
func decodeNextSpec(r io.Reader) (*childSpec, error) {
	s, err := readSpecFrame(r)
	if err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	if s.Speculative {
		if s.OCI.Process != nil || s.Rootfs != nil {
			return nil, fmt.Errorf("decode spec: a speculative spec has no process and no root of layers")
		}
		return s, nil
	}
	if s.OCI.Process == nil || len(s.OCI.Process.Args) == 0 {
		return nil, fmt.Errorf("decode spec: no process")
	}
	return s, nil
}

// Speculation turns the encoded spec of a run that is over (EncodeSpec)
// into one for the next pre-spawned init to build ahead: the same root,
// and nothing of the run's process (its arguments and environment do not
// reach another sandbox). ok is false for a spec with a root of layers,
// which is not built ahead.
func Speculation(encoded []byte) (b []byte, ok bool, err error) {
	s, err := decodeChildSpec(bytes.NewReader(encoded))
	if err != nil {
		return nil, false, err
	}
	if s.Rootfs != nil {
		return nil, false, nil
	}
	spec := childSpec{Symlinks: s.Symlinks, Speculative: true}
	spec.OCI.Mounts = s.OCI.Mounts
	spec.OCI.Linux = s.OCI.Linux
	return encodeChildSpec(&spec), true, nil
}

// sameRoot tells whether a and b build the same root: the same mounts,
// masked and read-only paths and symlinks, and neither has layers (a
// prebuilt root has none). Spelled out rather than reflected: it runs on
// the start-up path of an init whose code is cold.
func sameRoot(a, b *childSpec) bool {
	if a.Rootfs != nil || b.Rootfs != nil || len(a.OCI.Mounts) != len(b.OCI.Mounts) {
		return false
	}
	for i, m := range a.OCI.Mounts {
		n := b.OCI.Mounts[i]
		if m.Destination != n.Destination || m.Type != n.Type || m.Source != n.Source ||
			!slices.Equal(m.Options, n.Options) || !slices.Equal(m.UIDMappings, n.UIDMappings) || !slices.Equal(m.GIDMappings, n.GIDMappings) {
			return false
		}
	}
	return slices.Equal(a.OCI.Linux.MaskedPaths, b.OCI.Linux.MaskedPaths) &&
		slices.Equal(a.OCI.Linux.ReadonlyPaths, b.OCI.Linux.ReadonlyPaths) &&
		slices.Equal(a.Symlinks, b.Symlinks)
}

// prewarmDecoder decodes a sample spec with every part present, which
// maps in the decoder's code ahead for an init spawned ahead of its spec.
func prewarmDecoder() {
	c := &childSpec{Symlinks: []spec.Symlink{{Target: "x", Path: "/x"}}, Seccomp: []byte{0}, Rootfs: &spec.Rootfs{Lower: []string{"/x"}}}
	c.OCI.Process = &specs.Process{Args: []string{"x"}, ConsoleSize: &specs.Box{}, Capabilities: &specs.LinuxCapabilities{}}
	c.OCI.Mounts = []specs.Mount{{Destination: "/x", Options: []string{"x"}, UIDMappings: []specs.LinuxIDMapping{{Size: 1}}}}
	decodeChildSpec(bytes.NewReader(encodeChildSpec(c)))
}
