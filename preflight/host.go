package preflight

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// RuntimeDirFacts describe $XDG_RUNTIME_DIR, where sockets and per-boot
// state live. The XDG Base Directory spec requires it to be owned by the
// user with mode 0700.
type RuntimeDirFacts struct {
	Path  string // the variable's value; "" when unset
	Err   error  // why it could not be examined: not absolute, stat failed
	IsDir bool
	Owner int64 // -1 when unknown
	Perm  fs.FileMode
}

// ReadRuntimeDir examines dir (the value of XDG_RUNTIME_DIR) in fsys rooted
// at "/".
func ReadRuntimeDir(fsys fs.FS, dir string) RuntimeDirFacts {
	r := RuntimeDirFacts{Path: dir, Owner: -1}
	if dir == "" {
		return r
	}
	if !path.IsAbs(dir) {
		r.Err = errors.New("not an absolute path")
		return r
	}
	fi, err := fs.Stat(fsys, fsPath(dir))
	if err != nil {
		r.Err = unwrapPathError(err)
		return r
	}
	r.IsDir = fi.IsDir()
	r.Perm = fi.Mode().Perm()
	r.Owner = ownerOf(fi)
	return r
}

// unwrapPathError drops the fs.FS-relative name from a *fs.PathError; the
// callers word the absolute path themselves.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ownerOf returns the owner uid of fi, or -1 when its Sys does not say.
func ownerOf(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Uid)
	}
	return -1
}

// SystemdFacts say whether systemd runs the host and the user's session.
type SystemdFacts struct {
	// Booted: /run/systemd/system exists, systemd is PID 1 (sd_booted(3)).
	Booted bool
	// UserSocket is the first of $XDG_RUNTIME_DIR/systemd/private and
	// $XDG_RUNTIME_DIR/bus that is a socket: the user manager's private
	// D-Bus socket, or the session bus it activates. "" when neither is.
	UserSocket string
	// Linger: /var/lib/systemd/linger/USER exists, so the user manager
	// runs without a login session and survives logout.
	Linger bool
}

// ReadSystemd reads SystemdFacts from fsys rooted at "/". runtimeDir is
// $XDG_RUNTIME_DIR ("" when unset).
func ReadSystemd(fsys fs.FS, runtimeDir, user string) SystemdFacts {
	var s SystemdFacts
	if fi, err := fs.Stat(fsys, "run/systemd/system"); err == nil && fi.IsDir() {
		s.Booted = true
	}
	if path.IsAbs(runtimeDir) {
		for _, name := range []string{"systemd/private", "bus"} {
			p := path.Join(runtimeDir, name)
			if fi, err := fs.Stat(fsys, fsPath(p)); err == nil && fi.Mode().Type() == fs.ModeSocket {
				s.UserSocket = p
				break
			}
		}
	}
	if user != "" && !strings.ContainsAny(user, "/\x00") && user != "." && user != ".." {
		if _, err := fs.Stat(fsys, "var/lib/systemd/linger/"+user); err == nil {
			s.Linger = true
		}
	}
	return s
}

// Distro is the distribution family from os-release(5), used to word
// package installs.
type Distro struct {
	ID   string   // ID=, e.g. "ubuntu"
	Like []string // ID_LIKE=, e.g. ["debian"]
}

// ReadDistro reads etc/os-release, falling back to usr/lib/os-release.
func ReadDistro(fsys fs.FS) Distro {
	b, err := fs.ReadFile(fsys, "etc/os-release")
	if err != nil {
		b, err = fs.ReadFile(fsys, "usr/lib/os-release")
		if err != nil {
			return Distro{}
		}
	}
	return ParseOSRelease(b)
}

// ParseOSRelease reads ID and ID_LIKE from the content of an os-release
// file.
func ParseOSRelease(b []byte) Distro {
	var d Distro
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `'"`)
		}
		switch k {
		case "ID":
			d.ID = strings.ToLower(v)
		case "ID_LIKE":
			d.Like = strings.Fields(strings.ToLower(v))
		}
	}
	return d
}

// A package manager and the name it gives shadow's newuidmap/newgidmap
// package; the other programs have the same package name everywhere.
type packager struct {
	families []string
	install  string
	uidmap   string
}

// packagers are tried in order against ID, then ID_LIKE. Debian's is last
// and the default: its names are the ones upstream documents.
var packagers = [...]packager{
	{[]string{"fedora", "rhel", "centos", "rocky", "almalinux", "amzn"}, "sudo dnf install", "shadow-utils"},
	{[]string{"opensuse", "suse", "opensuse-tumbleweed", "opensuse-leap", "sles"}, "sudo zypper install", "shadow"},
	{[]string{"arch", "archarm", "manjaro"}, "sudo pacman -S", "shadow"},
	{[]string{"alpine"}, "sudo apk add", "shadow-uidmap"},
	{[]string{"debian", "ubuntu"}, "sudo apt-get install", "uidmap"},
}

// Install returns the command that installs pkg, named the Debian way
// ("uidmap", "fuse-overlayfs", "fuse3", "passt", "slirp4netns"), on d.
func (d Distro) Install(pkg string) string {
	p := packagers[len(packagers)-1]
	ids := append([]string{d.ID}, d.Like...)
outer:
	for _, id := range ids {
		for _, c := range packagers {
			for _, f := range c.families {
				if f == id {
					p = c
					break outer
				}
			}
		}
	}
	if pkg == "uidmap" {
		pkg = p.uidmap
	}
	return p.install + " " + pkg
}

// Subordinate ids handed out by useradd start at SUB_UID_MIN, 100000, in
// blocks of SUB_UID_COUNT, 65536 (login.defs(5)); a block that size maps
// every id a distribution image uses.
const (
	subIDMin       = 100000
	SubIDBlockSize = 65536
)

// NextFreeSubIDs returns the start of a block of SubIDBlockSize ids that no
// entry of etc/subuid or etc/subgid in fsys uses: the first id after the
// highest range, and at least 100000, the way useradd allocates. Lines it
// cannot read are ignored; the result is a suggestion for a fix command.
func NextFreeSubIDs(fsys fs.FS) uint32 {
	end := uint64(subIDMin)
	for _, name := range []string{"etc/subuid", "etc/subgid"} {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Split(strings.TrimSpace(line), ":")
			if len(f) != 3 {
				continue
			}
			s, err1 := strconv.ParseUint(f[1], 10, 32)
			c, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil && s+c > end {
				end = s + c
			}
		}
	}
	if end+SubIDBlockSize > 1<<32-1 {
		return subIDMin
	}
	return uint32(end)
}

// Tool is a helper program looked up on PATH.
type Tool struct {
	Name    string
	Path    string // "" when not found
	Version string // the line of its --version output that names it
	Err     error  // running it for its version failed
}

// lookPath returns the first regular, executable file named name in the
// absolute directories of pathEnv, or "". Relative elements are skipped:
// they would resolve against whatever the current directory is.
func lookPath(pathEnv, name string) string {
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// VersionLine picks the line of a program's --version output that names
// it (fuse-overlayfs prints fusermount3's version first), else the first
// non-empty line.
func VersionLine(name string, out []byte) string {
	first := ""
	for line := range strings.SplitSeq(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if first == "" {
			first = line
		}
		if strings.HasPrefix(strings.ToLower(line), strings.ToLower(name)) {
			return line
		}
	}
	return first
}
