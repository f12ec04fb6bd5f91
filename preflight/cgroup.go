package preflight

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// CgroupLayout is how the cgroup hierarchies are mounted under
// /sys/fs/cgroup.
type CgroupLayout string

const (
	// CgroupUnified: /sys/fs/cgroup is cgroup2 and holds every controller.
	CgroupUnified CgroupLayout = "unified"
	// CgroupHybrid: v1 controller hierarchies under /sys/fs/cgroup, plus a
	// controller-less cgroup2 (systemd's /sys/fs/cgroup/unified).
	CgroupHybrid CgroupLayout = "hybrid"
	// CgroupLegacy: cgroup v1 hierarchies only.
	CgroupLegacy CgroupLayout = "legacy"
	// CgroupNone: no cgroup file system is mounted at all.
	CgroupNone CgroupLayout = "none"
)

// cgroupRoot is where systemd and every distribution mount cgroups.
const cgroupRoot = "/sys/fs/cgroup"

// Mount is one line of /proc/self/mountinfo (proc(5)), the fields the
// probes need.
type Mount struct {
	Point  string // mount point, unescaped
	FSType string
	Source string
}

// ParseMountinfo parses the content of /proc/PID/mountinfo. Malformed lines
// are skipped: the kernel writes this file and a line we cannot read says
// nothing about cgroups.
func ParseMountinfo(b []byte) []Mount {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, Mount{Point: unescapeOctal(f[4]), FSType: f[sep+1], Source: unescapeOctal(f[sep+2])})
	}
	return out
}

// unescapeOctal undoes the kernel's \ooo escaping of space, tab, newline
// and backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CgroupFacts describe the cgroup set-up as seen from this process.
type CgroupFacts struct {
	Layout CgroupLayout
	// V2Mount is where the cgroup2 hierarchy is mounted ("" when it is
	// not): /sys/fs/cgroup when unified, /sys/fs/cgroup/unified on
	// systemd's hybrid layout.
	V2Mount string
	// Own is this process's cgroup2 path from /proc/self/cgroup (the "0::"
	// line), "" when there is none.
	Own string
	// Delegated is the cgroup2 path whose controllers were read: the
	// user's systemd manager (user@UID.service), where limits are
	// delegated.
	Delegated string
	// Controllers are the controllers available in Delegated
	// (cgroup.controllers); ControllersErr says why they could not be read.
	Controllers    []string
	ControllersErr error
}

// CgroupLayoutOf classifies mounts. The last mount on a mount point hides
// the ones before it.
func CgroupLayoutOf(mounts []Mount) (layout CgroupLayout, v2Mount string) {
	top := map[string]string{}
	var points []string
	for _, m := range mounts {
		if _, seen := top[m.Point]; !seen {
			points = append(points, m.Point)
		}
		top[m.Point] = m.FSType
	}
	v1 := false
	for _, p := range points {
		switch top[p] {
		case "cgroup2":
			if v2Mount == "" || p == cgroupRoot {
				v2Mount = p
			}
		case "cgroup":
			v1 = true
		}
	}
	switch {
	case top[cgroupRoot] == "cgroup2":
		return CgroupUnified, cgroupRoot
	case v1 && v2Mount != "":
		return CgroupHybrid, v2Mount
	case v1:
		return CgroupLegacy, ""
	case v2Mount != "":
		// cgroup2 mounted somewhere else and nothing at /sys/fs/cgroup:
		// unusual, but it is still the only hierarchy.
		return CgroupUnified, v2Mount
	}
	return CgroupNone, ""
}

// ParseProcCgroup returns the cgroup2 path in the content of
// /proc/PID/cgroup (cgroups(7): the "0::PATH" line), or "".
func ParseProcCgroup(b []byte) string {
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return strings.TrimSpace(p)
		}
	}
	return ""
}

// UserManagerCgroup returns the cgroup2 path of uid's systemd user manager:
// the "user@UID.service" ancestor of own when there is one (a process
// started by the manager), else where systemd puts it,
// /user.slice/user-UID.slice/user@UID.service.
func UserManagerCgroup(own string, uid uint32) string {
	svc := fmt.Sprintf("user@%d.service", uid)
	parts := strings.Split(own, "/")
	for i, p := range parts {
		if p == svc {
			return path.Clean("/" + strings.Join(parts[:i+1], "/"))
		}
	}
	return fmt.Sprintf("/user.slice/user-%d.slice/%s", uid, svc)
}

// ReadCgroupFacts reads the layout from proc/self/mountinfo, the own cgroup
// from proc/self/cgroup and the controllers delegated to uid's user manager
// from its cgroup.controllers, all in fsys rooted at "/". rootFSType is
// what statfs(2) says /sys/fs/cgroup is (FSType); when it is "cgroup2" the
// layout is unified whatever mountinfo says. Nothing is written.
func ReadCgroupFacts(fsys fs.FS, uid uint32, rootFSType string) CgroupFacts {
	var c CgroupFacts
	if mi, err := fs.ReadFile(fsys, "proc/self/mountinfo"); err == nil {
		c.Layout, c.V2Mount = CgroupLayoutOf(ParseMountinfo(mi))
	} else {
		c.Layout = CgroupNone
	}
	if rootFSType == "cgroup2" {
		c.Layout, c.V2Mount = CgroupUnified, cgroupRoot
	}
	if pc, err := fs.ReadFile(fsys, "proc/self/cgroup"); err == nil {
		c.Own = ParseProcCgroup(pc)
	}
	if c.V2Mount == "" {
		c.ControllersErr = fmt.Errorf("no cgroup2 file system is mounted")
		return c
	}
	c.Delegated = UserManagerCgroup(c.Own, uid)
	name := fsPath(path.Join(c.V2Mount, c.Delegated, "cgroup.controllers"))
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		c.ControllersErr = err
		return c
	}
	c.Controllers = strings.Fields(string(b))
	if c.Controllers == nil {
		c.Controllers = []string{}
	}
	return c
}

// limitControllers are the controllers `sandbox run --memory/--cpus/--pids`
// set limits through.
var limitControllers = []string{"cpu", "memory", "pids"}

// MissingControllers returns the limit controllers not in have.
func MissingControllers(have []string) []string {
	var out []string
	for _, want := range limitControllers {
		found := false
		for _, h := range have {
			if h == want {
				found = true
				break
			}
		}
		if !found {
			out = append(out, want)
		}
	}
	return out
}

// fsPath turns an absolute host path into a name for an fs.FS rooted at
// "/".
func fsPath(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}
