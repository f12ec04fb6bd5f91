package spec

import (
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mount types understood by the child stage, in OCI's words.
const (
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
	MountProc   = "proc"
	MountDevpts = "devpts"
	MountMqueue = "mqueue"
	MountSysfs  = "sysfs"
)

// IDMapMode names how ids are mapped into the user namespace.
type IDMapMode string

const (
	// IDMapSubIDs maps the caller's own ids plus the subordinate ranges,
	// written by newuidmap/newgidmap.
	IDMapSubIDs IDMapMode = "subids"
	// IDMapSingle maps only the caller's own uid and gid, written without
	// helpers; setgroups is denied.
	IDMapSingle IDMapMode = "single"
	// IDMapRoot maps inside id 0 to the caller and 1, 2, ... to the
	// subordinate ranges, as rootless podman does for images.
	IDMapRoot IDMapMode = "root"
)

// Rootfs is a root made of host directories instead of the host-tool
// skeleton: an overlay of Lower (topmost first) with a writable layer.
type Rootfs struct {
	// Lower are host directories, topmost first, never written to.
	Lower []string `json:"lower"`
	// Upper and Work are the host directories of the writable layer; both
	// empty means a tmpfs inside the sandbox, discarded at exit.
	Upper string `json:"upper,omitempty"`
	Work  string `json:"work,omitempty"`
	// ReadOnly mounts the root read-only (the mounts on it keep theirs).
	ReadOnly bool `json:"readOnly,omitempty"`
	// Overlay says which overlay assembles the layers: OverlayKernel
	// (also ""), OverlayFuse, or OverlayAuto.
	Overlay string `json:"overlay,omitempty"`
}

// Overlay modes of a Rootfs.
const (
	// OverlayKernel is kernel overlayfs mounted inside the user namespace.
	OverlayKernel = "kernel"
	// OverlayFuse is fuse-overlayfs: the sandbox mounts a FUSE file
	// system and a daemon outside its PID namespace serves it. It needs
	// Upper and Work, which the daemon writes.
	OverlayFuse = "fuse"
	// OverlayAuto is kernel overlayfs, and fuse-overlayfs when the kernel
	// refuses it and the root has Upper and Work.
	OverlayAuto = "auto"
)

// Symlink is a symbolic link created in the root after the mounts.
type Symlink struct {
	Target string `json:"target"` // what the link points to, as written
	Path   string `json:"path"`   // absolute path inside the root
}

// Spec is the frozen description of one sandbox.
type Spec struct {
	// OCI holds Process, Hostname, Mounts (applied in order) and Linux
	// (namespaces, UIDMappings, GIDMappings).
	OCI specs.Spec `json:"oci"`

	// IDMap says how OCI.Linux.UIDMappings/GIDMappings will be written.
	IDMap IDMapMode `json:"idmap"`

	// Symlinks are created inside the root after all mounts, before the
	// root skeleton is made read-only.
	Symlinks []Symlink `json:"symlinks,omitempty"`

	// Interactive keeps the caller's stdin attached; otherwise the command
	// reads /dev/null from inside the sandbox.
	Interactive bool `json:"interactive,omitempty"`

	// Debug makes the child report each stage with a timestamp.
	Debug bool `json:"debug,omitempty"`

	// Seccomp is OCI.Linux.Seccomp compiled to a BPF program (8 bytes an
	// instruction) in the parent; the child only installs it. Empty means
	// unconfined.
	Seccomp []byte `json:"seccomp,omitempty"`

	// Rootfs, when set, is the root (an image or --rootfs); nil means the
	// profile's skeleton of host directories.
	Rootfs *Rootfs `json:"rootfs,omitempty"`
}

// InvalidError reports a Spec field that cannot be used. Field names the
// input in the user's words (a flag or profile key), Value is what was given.
type InvalidError struct {
	Field  string
	Value  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Reasons used in InvalidError, compared by cmd/sandbox to choose a fix.
const (
	ReasonNotAbsolute = "not an absolute path"
	ReasonDotDot      = "leaves the root through '..'"
	ReasonEmpty       = "is empty"
	ReasonNUL         = "contains a NUL byte"
	ReasonRootMount   = "cannot mount over the root itself"
	ReasonDuplicate   = "is mounted twice"
	ReasonOverlap     = "overlaps another range"
)

// CheckPath checks that p is an absolute path inside the root with no '..'
// element, and returns it cleaned. field names the input for the error.
func CheckPath(field, p string) (string, error) {
	switch {
	case p == "":
		return "", &InvalidError{field, p, ReasonEmpty}
	case strings.IndexByte(p, 0) >= 0:
		return "", &InvalidError{field, p, ReasonNUL}
	case !path.IsAbs(p):
		return "", &InvalidError{field, p, ReasonNotAbsolute}
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", &InvalidError{field, p, ReasonDotDot}
		}
	}
	return path.Clean(p), nil
}

// Validate checks the whole Spec. It is called once, in the parent, before
// anything is spawned.
func (s *Spec) Validate() error {
	p := s.OCI.Process
	if p == nil || len(p.Args) == 0 || p.Args[0] == "" {
		return &InvalidError{"command", "", ReasonEmpty}
	}
	if _, err := CheckPath("workdir", p.Cwd); err != nil {
		return err
	}
	for _, e := range p.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return &InvalidError{"env", e, "is not NAME=VALUE"}
		}
	}
	if r := s.Rootfs; r != nil {
		if len(r.Lower) == 0 {
			return &InvalidError{"rootfs", "", ReasonEmpty}
		}
		for _, d := range r.Lower {
			if !path.IsAbs(d) || strings.ContainsAny(d, ":,\x00") {
				return &InvalidError{"rootfs layer", d, "is not an absolute path without ':' or ','"}
			}
		}
		if (r.Upper == "") != (r.Work == "") {
			return &InvalidError{"rootfs upper layer", r.Upper, "needs both an upper and a work directory"}
		}
		for _, d := range []string{r.Upper, r.Work} {
			if d != "" && (!path.IsAbs(d) || strings.ContainsAny(d, ":,\x00")) {
				return &InvalidError{"rootfs upper layer", d, "is not an absolute path without ':' or ','"}
			}
		}
		switch r.Overlay {
		case "", OverlayKernel, OverlayAuto:
		case OverlayFuse:
			if r.Upper == "" {
				return &InvalidError{"rootfs overlay", r.Overlay, "needs an upper directory on the host"}
			}
		default:
			return &InvalidError{"rootfs overlay", r.Overlay, "is not one of kernel, fuse, auto"}
		}
	}
	seen := map[string]bool{}
	for _, m := range s.OCI.Mounts {
		dst, err := CheckPath("mount destination", m.Destination)
		if err != nil {
			return err
		}
		if dst != m.Destination {
			return &InvalidError{"mount destination", m.Destination, "is not clean"}
		}
		if dst == "/" {
			return &InvalidError{"mount destination", dst, ReasonRootMount}
		}
		if seen[dst] {
			return &InvalidError{"mount destination", dst, ReasonDuplicate}
		}
		seen[dst] = true
		switch m.Type {
		case MountBind:
			if !path.IsAbs(m.Source) {
				return &InvalidError{"bind source", m.Source, ReasonNotAbsolute}
			}
		case MountTmpfs, MountProc, MountDevpts, MountMqueue, MountSysfs:
		default:
			return &InvalidError{"mount type", m.Type, "is not one of bind, tmpfs, proc, devpts, mqueue, sysfs"}
		}
		for _, o := range m.Options {
			if _, ok := knownOptions[optionName(o)]; !ok {
				return &InvalidError{"mount option", o, "is not supported"}
			}
		}
	}
	for _, l := range s.Symlinks {
		if _, err := CheckPath("symlink", l.Path); err != nil {
			return err
		}
		if l.Target == "" {
			return &InvalidError{"symlink target", l.Path, ReasonEmpty}
		}
	}
	if c := p.Capabilities; c != nil {
		for field, set := range map[string][]string{"bounding capabilities": c.Bounding, "effective capabilities": c.Effective,
			"permitted capabilities": c.Permitted, "inheritable capabilities": c.Inheritable, "ambient capabilities": c.Ambient} {
			if err := checkCaps(field, set); err != nil {
				return err
			}
		}
	}
	if s.OCI.Linux == nil {
		return &InvalidError{"linux", "", ReasonEmpty}
	}
	for _, m := range s.OCI.Linux.MaskedPaths {
		if _, err := CheckPath("masked path", m); err != nil {
			return err
		}
	}
	for _, m := range s.OCI.Linux.ReadonlyPaths {
		if _, err := CheckPath("read-only path", m); err != nil {
			return err
		}
	}
	if len(s.Seccomp)%8 != 0 {
		return &InvalidError{"seccomp program", fmt.Sprintf("%d bytes", len(s.Seccomp)), "is not whole BPF instructions"}
	}
	if err := checkMappings("uid map", s.OCI.Linux.UIDMappings); err != nil {
		return err
	}
	if err := checkMappings("gid map", s.OCI.Linux.GIDMappings); err != nil {
		return err
	}
	switch s.IDMap {
	case IDMapSubIDs, IDMapSingle, IDMapRoot:
	default:
		return &InvalidError{"idmap", string(s.IDMap), "is not subids or single"}
	}
	if s.IDMap == IDMapSingle && (len(s.OCI.Linux.UIDMappings) != 1 || len(s.OCI.Linux.GIDMappings) != 1) {
		return &InvalidError{"idmap", string(s.IDMap), "needs exactly one uid and one gid mapping"}
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return &InvalidError{"console size", "", "given without a terminal"}
	}
	return nil
}

var knownOptions = map[string]struct{}{
	"bind": {}, "rbind": {}, "ro": {}, "rw": {}, "nosuid": {}, "nodev": {}, "noexec": {},
	"mode": {}, "size": {}, "nr_inodes": {}, "newinstance": {}, "ptmxmode": {}, "gid": {},
	"uid": {}, "optional": {},
}

func optionName(o string) string {
	if i := strings.IndexByte(o, '='); i >= 0 {
		return o[:i]
	}
	return o
}

// HasOption reports whether m carries option name (with or without a value).
func HasOption(m specs.Mount, name string) bool {
	for _, o := range m.Options {
		if optionName(o) == name {
			return true
		}
	}
	return false
}

func checkMappings(field string, ms []specs.LinuxIDMapping) error {
	if len(ms) == 0 {
		return &InvalidError{field, "", ReasonEmpty}
	}
	for i, a := range ms {
		if a.Size == 0 {
			return &InvalidError{field, fmtMapping(a), "has size 0"}
		}
		for _, b := range ms[:i] {
			if overlaps(a.ContainerID, b.ContainerID, a.Size, b.Size) || overlaps(a.HostID, b.HostID, a.Size, b.Size) {
				return &InvalidError{field, fmtMapping(a), ReasonOverlap}
			}
		}
	}
	return nil
}

func overlaps(a, b, asz, bsz uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsz) && uint64(b) < uint64(a)+uint64(asz)
}

func fmtMapping(m specs.LinuxIDMapping) string {
	return fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
}
