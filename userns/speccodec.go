package userns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/spec"
)

// The child's spec travels down the spec pipe in a binary form of its
// own, written and read field by field: encoding/json took 0.6-2 ms to
// decode a 4 KB spec in the init, on the start-up path, and a few
// microseconds do here. A frame is specMagic, the payload's length
// (uint32, little-endian) and the payload: every field of childSpec in a
// fixed order, numbers as uvarints, strings and byte slices with their
// length, lists with their count plus one (0 for nil, so a decoded spec
// equals the encoded one), optional parts behind a presence flag. Of the
// process it carries what the child acts on.

const specMagic = "SBS1"

// maxSpecFrame bounds a frame the child reads.
const maxSpecFrame = 16 << 20

type specWriter struct{ b []byte }

func (w *specWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *specWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *specWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *specWriter) count(n int, isNil bool) {
	if isNil {
		w.uint(0)
	} else {
		w.uint(uint64(n) + 1)
	}
}

func (w *specWriter) strs(ss []string) {
	w.count(len(ss), ss == nil)
	for _, s := range ss {
		w.str(s)
	}
}

func (w *specWriter) bytes(b []byte) {
	w.count(len(b), b == nil)
	w.b = append(w.b, b...)
}

func (w *specWriter) idMaps(ms []specs.LinuxIDMapping) {
	w.count(len(ms), ms == nil)
	for _, m := range ms {
		w.uint(uint64(m.ContainerID))
		w.uint(uint64(m.HostID))
		w.uint(uint64(m.Size))
	}
}

// encodeChildSpec frames c.
func encodeChildSpec(c *childSpec) []byte {
	w := &specWriter{b: make([]byte, 8, 4096)}
	copy(w.b, specMagic)
	p := c.OCI.Process
	w.bool(p != nil)
	if p != nil {
		w.bool(p.Terminal)
		w.bool(p.ConsoleSize != nil)
		if p.ConsoleSize != nil {
			w.uint(uint64(p.ConsoleSize.Height))
			w.uint(uint64(p.ConsoleSize.Width))
		}
		w.uint(uint64(p.User.UID))
		w.uint(uint64(p.User.GID))
		w.count(len(p.User.AdditionalGids), p.User.AdditionalGids == nil)
		for _, g := range p.User.AdditionalGids {
			w.uint(uint64(g))
		}
		w.strs(p.Args)
		w.strs(p.Env)
		w.str(p.Cwd)
		w.bool(p.Capabilities != nil)
		if c := p.Capabilities; c != nil {
			for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
				w.strs(set)
			}
		}
		w.bool(p.NoNewPrivileges)
	}
	w.str(c.OCI.Hostname)
	w.count(len(c.OCI.Mounts), c.OCI.Mounts == nil)
	for _, m := range c.OCI.Mounts {
		w.str(m.Destination)
		w.str(m.Type)
		w.str(m.Source)
		w.strs(m.Options)
		w.idMaps(m.UIDMappings)
		w.idMaps(m.GIDMappings)
	}
	w.strs(c.OCI.Linux.MaskedPaths)
	w.strs(c.OCI.Linux.ReadonlyPaths)
	w.count(len(c.Symlinks), c.Symlinks == nil)
	for _, l := range c.Symlinks {
		w.str(l.Target)
		w.str(l.Path)
	}
	w.bool(c.Interactive)
	w.bool(c.Debug)
	w.bytes(c.Seccomp)
	w.bool(c.Rootfs != nil)
	if r := c.Rootfs; r != nil {
		w.strs(r.Lower)
		w.str(r.Upper)
		w.str(r.Work)
		w.bool(r.ReadOnly)
		w.str(r.Overlay)
	}
	w.bool(c.Speculative)
	w.uint(c.TimerSlack)
	binary.LittleEndian.PutUint32(w.b[4:8], uint32(len(w.b)-8))
	return w.b
}

var errSpecShort = errors.New("spec ends early")

// specReader reads a payload; the first error sticks and every later
// read returns zero values.
type specReader struct {
	b   []byte
	err error
}

func (r *specReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errSpecShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

// upTo reads a number of at most limit.
func (r *specReader) upTo(limit uint64) uint64 {
	v := r.uint()
	if v > limit {
		r.fail(fmt.Errorf("number %d out of range", v))
		return 0
	}
	return v
}

func (r *specReader) uint32() uint32 { return uint32(r.upTo(1<<32 - 1)) }

// int31 reads a number that must fit an int32 (and so an int).
func (r *specReader) int31() int { return int(r.upTo(1<<31 - 1)) }

func (r *specReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *specReader) bool() bool {
	switch v := r.uint(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail(fmt.Errorf("flag %d", v))
		return false
	}
}

func (r *specReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errSpecShort
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *specReader) str() string { return string(r.take(r.uint())) }

// count reads a list's count: -1 for nil. A list cannot have more
// entries than bytes left, which bounds what a bad count allocates.
func (r *specReader) count() int {
	n := r.uint()
	if n == 0 || r.err != nil {
		return -1
	}
	if n-1 > uint64(len(r.b)) {
		r.err = errSpecShort
		return -1
	}
	return int(n - 1)
}

func (r *specReader) strs() []string {
	n := r.count()
	if n < 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.str()
	}
	return ss
}

func (r *specReader) bytes() []byte {
	n := r.count()
	if n < 0 {
		return nil
	}
	return append([]byte{}, r.take(uint64(n))...)
}

func (r *specReader) idMaps() []specs.LinuxIDMapping {
	n := r.count()
	if n < 0 {
		return nil
	}
	ms := make([]specs.LinuxIDMapping, n)
	for i := range ms {
		ms[i] = specs.LinuxIDMapping{ContainerID: r.uint32(), HostID: r.uint32(), Size: r.uint32()}
	}
	return ms
}

// decodePayload reads a frame's payload into a childSpec.
func decodePayload(b []byte) (*childSpec, error) {
	r := &specReader{b: b}
	c := &childSpec{}
	if r.bool() {
		p := &specs.Process{Terminal: r.bool()}
		if r.bool() {
			p.ConsoleSize = &specs.Box{Height: uint(r.uint()), Width: uint(r.uint())}
		}
		p.User.UID, p.User.GID = r.uint32(), r.uint32()
		if n := r.count(); n >= 0 {
			p.User.AdditionalGids = make([]uint32, n)
			for i := range p.User.AdditionalGids {
				p.User.AdditionalGids[i] = r.uint32()
			}
		}
		p.Args, p.Env, p.Cwd = r.strs(), r.strs(), r.str()
		if r.bool() {
			p.Capabilities = &specs.LinuxCapabilities{Bounding: r.strs(), Effective: r.strs(), Inheritable: r.strs(), Permitted: r.strs(), Ambient: r.strs()}
		}
		p.NoNewPrivileges = r.bool()
		c.OCI.Process = p
	}
	c.OCI.Hostname = r.str()
	if n := r.count(); n >= 0 {
		c.OCI.Mounts = make([]specs.Mount, n)
		for i := range c.OCI.Mounts {
			m := &c.OCI.Mounts[i]
			m.Destination, m.Type, m.Source = r.str(), r.str(), r.str()
			m.Options, m.UIDMappings, m.GIDMappings = r.strs(), r.idMaps(), r.idMaps()
		}
	}
	c.OCI.Linux.MaskedPaths, c.OCI.Linux.ReadonlyPaths = r.strs(), r.strs()
	if n := r.count(); n >= 0 {
		c.Symlinks = make([]spec.Symlink, n)
		for i := range c.Symlinks {
			c.Symlinks[i] = spec.Symlink{Target: r.str(), Path: r.str()}
		}
	}
	c.Interactive, c.Debug, c.Seccomp = r.bool(), r.bool(), r.bytes()
	if r.bool() {
		c.Rootfs = &spec.Rootfs{Lower: r.strs(), Upper: r.str(), Work: r.str(), ReadOnly: r.bool(), Overlay: r.str()}
	}
	c.Speculative = r.bool()
	c.TimerSlack = r.uint()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the spec", len(r.b))
	}
	return c, r.err
}

// readSpecFrame reads one frame from r and decodes it.
func readSpecFrame(rd io.Reader) (*childSpec, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, err
	}
	if string(hdr[:4]) != specMagic {
		return nil, fmt.Errorf("not a spec (starts with %q)", hdr[:4])
	}
	n := binary.LittleEndian.Uint32(hdr[4:])
	if n > maxSpecFrame {
		return nil, fmt.Errorf("spec of %d bytes, more than %d", n, maxSpecFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, err
	}
	return decodePayload(b)
}
