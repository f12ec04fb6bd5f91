package profiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/seccomp"
	"sandbox/spec"
)

// Inputs are the user's choices for one run, already read from flags and
// files by the CLI. Plan reads nothing else but the host fs.FS.
type Inputs struct {
	Args        []string
	Cwd         string // the caller's working directory on the host
	Workdir     string // -w; empty means Cwd
	Volumes     []string
	Tmpfs       []string
	Env         []string // -e NAME=VALUE or NAME
	EnvFiles    []EnvFile
	HostEnv     []string
	Hostname    string
	Terminal    bool
	ConsoleSize *specs.Box
	Interactive bool
	UID, GID    uint32 // the caller's ids; the command runs as them inside
	IDMap       spec.IDMapMode
	UIDMappings []specs.LinuxIDMapping
	GIDMappings []specs.LinuxIDMapping
	Debug       bool

	// CapAdd and CapDrop are --cap-add and --cap-drop, applied to
	// spec.DefaultCaps (drop first).
	CapAdd, CapDrop []string
	// Seccomp is the filter profile: nil means the default one, unless
	// Unconfined (--security-opt seccomp=unconfined).
	Seccomp    *specs.LinuxSeccomp
	Unconfined bool
	// Mask and Unmask add to and remove from the profile's masked paths;
	// "ALL" in Unmask removes them all.
	Mask, Unmask []string

	// Rootfs is the root of an image or --rootfs; nil means the
	// profile's skeleton of host directories.
	Rootfs *spec.Rootfs
	// ImageEnv is the image's environment, applied over the profile's and
	// under --env-file and -e.
	ImageEnv []string
}

// EnvFile is the content of one --env-file.
type EnvFile struct {
	Path string
	Data []byte
}

// VolumeError is a --volume value that cannot be parsed.
type VolumeError struct {
	Value  string
	Reason string
}

func (e *VolumeError) Error() string { return fmt.Sprintf("volume %q: %s", e.Value, e.Reason) }

// BindSourceError is a bind source that cannot be used on the host.
type BindSourceError struct {
	Source string
	Dest   string
	Err    error
}

func (e *BindSourceError) Error() string {
	return fmt.Sprintf("bind %s on %s: %v", e.Source, e.Dest, e.Err)
}
func (e *BindSourceError) Unwrap() error { return e.Err }

// EnvFileError is a malformed line in an --env-file.
type EnvFileError struct {
	Path string
	Line int
	Text string
}

func (e *EnvFileError) Error() string {
	return fmt.Sprintf("env file %s line %d: %q is not NAME=VALUE", e.Path, e.Line, e.Text)
}

// UnmappedUserError is an explicit map that leaves the caller's own id
// unmapped inside, so the command would run as the overflow id.
type UnmappedUserError struct {
	Kind string // "uid" or "gid"
	ID   uint32
}

func (e *UnmappedUserError) Error() string {
	return fmt.Sprintf("the %s map does not map your own %s %d", e.Kind, e.Kind, e.ID)
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Plan builds the frozen spec for one run of profile p.
func Plan(p *Profile, in Inputs, host fs.FS) (*spec.Spec, error) {
	s := &spec.Spec{IDMap: in.IDMap, Interactive: in.Interactive, Debug: in.Debug, Rootfs: in.Rootfs}
	s.OCI.Version = specs.Version
	s.OCI.Hostname = p.Hostname
	if in.Hostname != "" {
		s.OCI.Hostname = in.Hostname
	}

	if !mapsID(in.UIDMappings, in.UID) {
		return nil, &UnmappedUserError{Kind: "uid", ID: in.UID}
	}
	if !mapsID(in.GIDMappings, in.GID) {
		return nil, &UnmappedUserError{Kind: "gid", ID: in.GID}
	}

	var mounts []specs.Mount
	for _, d := range p.SystemDirs {
		dir, err := spec.CheckPath("system-dirs", d)
		if err != nil {
			return nil, err
		}
		fi, err := fs.Lstat(host, rel(dir))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // absent on this host
		case err != nil:
			return nil, &BindSourceError{Source: dir, Dest: dir, Err: unwrapPath(err)}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(host, rel(dir))
			if err != nil {
				return nil, &BindSourceError{Source: dir, Dest: dir, Err: err}
			}
			s.Symlinks = append(s.Symlinks, spec.Symlink{Target: target, Path: dir})
		case fi.IsDir():
			mounts = append(mounts, bind(dir, dir, true))
		}
	}
	mounts = append(mounts,
		specs.Mount{Destination: "/proc", Type: spec.MountProc, Source: "proc", Options: []string{"nosuid", "nodev", "noexec"}},
		specs.Mount{Destination: "/dev", Type: spec.MountTmpfs, Source: "tmpfs", Options: []string{"mode=0755", "size=64k", "nosuid", "noexec"}},
	)
	if in.Rootfs != nil {
		// An image expects a /sys; the sandbox's own network namespace
		// lets it be mounted, read-only, with the usual paths masked.
		mounts = append(mounts, specs.Mount{Destination: "/sys", Type: spec.MountSysfs, Source: "sysfs", Options: []string{"ro", "nosuid", "nodev", "noexec"}})
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		mounts = append(mounts, specs.Mount{Destination: "/dev/" + d, Type: spec.MountBind, Source: "/dev/" + d, Options: []string{"bind", "nosuid", "noexec"}})
	}
	pts := []string{"newinstance", "ptmxmode=0666", "mode=0620", "nosuid", "noexec"}
	if mapsID(in.GIDMappings, ttyGID) {
		pts = append(pts, fmt.Sprintf("gid=%d", ttyGID))
	}
	mounts = append(mounts,
		specs.Mount{Destination: "/dev/pts", Type: spec.MountDevpts, Source: "devpts", Options: pts},
		specs.Mount{Destination: "/dev/shm", Type: spec.MountTmpfs, Source: "shm", Options: []string{"mode=1777", "nosuid", "nodev"}},
	)
	s.Symlinks = append(s.Symlinks,
		spec.Symlink{Target: "pts/ptmx", Path: "/dev/ptmx"},
		spec.Symlink{Target: "/proc/self/fd", Path: "/dev/fd"},
		spec.Symlink{Target: "/proc/self/fd/0", Path: "/dev/stdin"},
		spec.Symlink{Target: "/proc/self/fd/1", Path: "/dev/stdout"},
		spec.Symlink{Target: "/proc/self/fd/2", Path: "/dev/stderr"},
	)
	for _, t := range p.Tmpfs {
		m, err := parseTmpfs("tmpfs", t)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	if p.BindWorkdir && in.Cwd != "/" {
		cwd, err := spec.CheckPath("current directory", in.Cwd)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, bind(cwd, cwd, false))
	}
	for _, v := range append(append([]string{}, p.Volume...), in.Volumes...) {
		m, err := parseVolume(v, in.Cwd)
		if err != nil {
			return nil, err
		}
		if _, err := fs.Stat(host, rel(m.Source)); err != nil {
			return nil, &BindSourceError{Source: m.Source, Dest: m.Destination, Err: unwrapPath(err)}
		}
		mounts = append(mounts, m)
	}
	for _, t := range in.Tmpfs {
		m, err := parseTmpfs("--tmpfs", t)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	// A destination at or below a symlink of the skeleton (a work
	// directory under /lib on a merged-/usr host) is mounted where the
	// link points, so the path works inside as it does on the host.
	for i := range mounts {
		dst, err := throughLinks(mounts[i].Destination, s.Symlinks)
		if err != nil {
			return nil, err
		}
		mounts[i].Destination = dst
	}
	s.OCI.Mounts = orderMounts(mounts)

	if err := planSecurity(s, p, in); err != nil {
		return nil, err
	}

	env, err := planEnv(p, in)
	if err != nil {
		return nil, err
	}
	wd := in.Workdir
	if wd == "" {
		wd = in.Cwd
		if in.Rootfs != nil {
			wd = "/"
		}
	}
	wd, err = spec.CheckPath("workdir", wd)
	if err != nil {
		return nil, err
	}
	bounding, granted, err := spec.PlanCaps(in.CapAdd, in.CapDrop)
	if err != nil {
		return nil, err
	}
	if in.Rootfs != nil && in.UID == 0 {
		// Root of an image holds the bounding set, as it would under a
		// container engine: package managers chown, setuid and so on.
		granted = bounding
	}
	s.OCI.Process = &specs.Process{
		Terminal:    in.Terminal,
		ConsoleSize: in.ConsoleSize,
		User:        specs.User{UID: in.UID, GID: in.GID},
		Args:        in.Args,
		Env:         env,
		Cwd:         wd,
		Capabilities: &specs.LinuxCapabilities{
			Bounding: bounding, Effective: granted, Permitted: granted,
			Inheritable: granted, Ambient: granted,
		},
		NoNewPrivileges: true,
	}
	s.OCI.Linux = &specs.Linux{
		MaskedPaths:   s.OCI.Linux.MaskedPaths,
		ReadonlyPaths: s.OCI.Linux.ReadonlyPaths,
		Seccomp:       s.OCI.Linux.Seccomp,
		UIDMappings:   in.UIDMappings,
		GIDMappings:   in.GIDMappings,
		Namespaces: []specs.LinuxNamespace{
			{Type: specs.UserNamespace}, {Type: specs.MountNamespace}, {Type: specs.PIDNamespace},
			{Type: specs.UTSNamespace}, {Type: specs.IPCNamespace}, {Type: specs.NetworkNamespace},
			{Type: specs.CgroupNamespace},
		},
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

const ttyGID = 5

// planSecurity fills in the masked and read-only paths and the seccomp
// filter, compiled here in the parent.
func planSecurity(s *spec.Spec, p *Profile, in Inputs) error {
	s.OCI.Linux = &specs.Linux{}
	unmaskAll := false
	unmask := map[string]bool{}
	for _, u := range in.Unmask {
		if u == "ALL" {
			unmaskAll = true
			continue
		}
		c, err := spec.CheckPath("unmask", u)
		if err != nil {
			return err
		}
		unmask[c] = true
	}
	if !unmaskAll {
		for _, m := range p.MaskedPaths {
			if !unmask[m] {
				s.OCI.Linux.MaskedPaths = append(s.OCI.Linux.MaskedPaths, m)
			}
		}
	}
	for _, m := range in.Mask {
		c, err := spec.CheckPath("mask", m)
		if err != nil {
			return err
		}
		s.OCI.Linux.MaskedPaths = append(s.OCI.Linux.MaskedPaths, c)
	}
	s.OCI.Linux.ReadonlyPaths = append(s.OCI.Linux.ReadonlyPaths, p.ReadOnly...)
	if in.Unconfined {
		return nil
	}
	prof := in.Seccomp
	if prof == nil {
		// Compiled when sandbox was built: compiling takes about 1 ms of
		// every run's start-up.
		s.OCI.Linux.Seccomp = seccomp.Default(seccomp.Options{})
		s.Seccomp = seccomp.DefaultProgram()
		return nil
	}
	prog, err := seccomp.Compile(prof)
	if err != nil {
		return err
	}
	s.OCI.Linux.Seccomp = prof
	s.Seccomp = seccomp.Encode(prog)
	return nil
}

// throughLinks rewrites dst when it is below one of links, following
// relative targets from the link's directory. A destination that is a link
// itself cannot be mounted on.
func throughLinks(dst string, links []spec.Symlink) (string, error) {
	for hops := 0; hops < 8; hops++ {
		moved := false
		for _, l := range links {
			if dst == l.Path {
				return "", &spec.InvalidError{Field: "mount destination", Value: dst, Reason: "is a symbolic link in this profile (" + l.Path + " -> " + l.Target + ")"}
			}
			rest, ok := strings.CutPrefix(dst, l.Path+"/")
			if !ok {
				continue
			}
			target := l.Target
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(l.Path), target)
			}
			dst = path.Join(target, rest)
			moved = true
		}
		if !moved {
			return spec.CheckPath("mount destination", dst)
		}
	}
	return "", &spec.InvalidError{Field: "mount destination", Value: dst, Reason: "goes through too many symbolic links"}
}

func mapsID(ms []specs.LinuxIDMapping, id uint32) bool {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

func rel(p string) string {
	r := strings.TrimPrefix(path.Clean(p), "/")
	if r == "" {
		return "."
	}
	return r
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func bind(src, dst string, ro bool) specs.Mount {
	opt := "rw"
	if ro {
		opt = "ro"
	}
	return specs.Mount{Destination: dst, Type: spec.MountBind, Source: src, Options: []string{"rbind", opt, "nosuid"}}
}

// parseVolume parses SRC[:DST[:OPTS]]. A relative SRC is taken from cwd;
// DST defaults to SRC; OPTS is a comma list of ro, rw, noexec.
func parseVolume(v, cwd string) (specs.Mount, error) {
	parts := strings.Split(v, ":")
	if len(parts) > 3 || parts[0] == "" {
		return specs.Mount{}, &VolumeError{Value: v, Reason: "want SRC:DST[:ro]"}
	}
	src := parts[0]
	if !path.IsAbs(src) {
		src = path.Join(cwd, src)
	}
	src = path.Clean(src)
	dst := src
	if len(parts) > 1 {
		dst = parts[1]
	}
	dst, err := spec.CheckPath("volume destination", dst)
	if err != nil {
		return specs.Mount{}, err
	}
	ro := false
	var extra []string
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				ro = true
			case "rw":
				ro = false
			case "noexec", "nodev":
				extra = append(extra, o)
			default:
				return specs.Mount{}, &VolumeError{Value: v, Reason: fmt.Sprintf("unknown option %q (want ro, rw, noexec or nodev)", o)}
			}
		}
	}
	m := bind(src, dst, ro)
	m.Options = append(m.Options, extra...)
	return m, nil
}

// parseTmpfs parses DST[:OPTS] with OPTS like podman's (mode=, size=, ro).
func parseTmpfs(field, v string) (specs.Mount, error) {
	dst, opts, _ := strings.Cut(v, ":")
	dst, err := spec.CheckPath(field, dst)
	if err != nil {
		return specs.Mount{}, err
	}
	options := []string{"nosuid", "nodev"}
	mode := "mode=1777"
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			if strings.HasPrefix(o, "mode=") {
				mode = o
				continue
			}
			options = append(options, o)
		}
	}
	return specs.Mount{Destination: dst, Type: spec.MountTmpfs, Source: "tmpfs", Options: append([]string{mode}, options...)}, nil
}

// orderMounts keeps the last mount for each destination (the user's
// volumes override the profile's) and orders parents before children,
// otherwise keeping the given order.
func orderMounts(ms []specs.Mount) []specs.Mount {
	last := map[string]int{}
	for i, m := range ms {
		last[m.Destination] = i
	}
	out := make([]specs.Mount, 0, len(ms))
	for i, m := range ms {
		if last[m.Destination] == i {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Destination) < depth(out[j].Destination) })
	return out
}

func depth(p string) int { return strings.Count(p, "/") }

func planEnv(p *Profile, in Inputs) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	host := map[string]string{}
	for _, kv := range in.HostEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			host[k] = v
		}
	}
	for _, kv := range in.HostEnv {
		k, v, _ := strings.Cut(kv, "=")
		for _, pat := range p.EnvPass {
			if k == pat || (strings.HasSuffix(pat, "*") && strings.HasPrefix(k, strings.TrimSuffix(pat, "*"))) {
				set(k, v)
				break
			}
		}
	}
	apply := func(kv string) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set(k, v)
		} else if v, ok := host[kv]; ok {
			set(kv, v)
		}
	}
	for _, kv := range p.Env {
		apply(kv)
	}
	for _, kv := range in.ImageEnv {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			set(k, v)
		}
	}
	for _, f := range in.EnvFiles {
		sc := bufio.NewScanner(bytes.NewReader(f.Data))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, "=") {
				return nil, &EnvFileError{Path: f.Path, Line: n, Text: line}
			}
			apply(line)
		}
	}
	for _, kv := range in.Env {
		if kv == "" || strings.HasPrefix(kv, "=") {
			return nil, &spec.InvalidError{Field: "env", Value: kv, Reason: "is not NAME=VALUE or NAME"}
		}
		apply(kv)
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH", defaultPath)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, nil
}
