package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"sandbox/idmap"
)

// Check is one verdict about the host.
type Check struct {
	// Name is a stable lower-case identifier, e.g. "userns".
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Required is true when the default `sandbox run` (a host tool, host
	// binds, single-id map, no network) cannot work without it; the rest
	// is recommended for images, networking, limits and detached runs.
	Required bool   `json:"required"`
	Detail   string `json:"detail"`
	// Fixes are alternative commands, each complete and pasteable, the
	// first preferred. Empty when OK, or when no command fixes it.
	Fixes []string `json:"fixes"`
}

// Run gathers the facts of the host and judges them.
func Run(ctx context.Context, o Options) []Check {
	return Evaluate(Gather(ctx, o))
}

// Evaluate turns facts into checks, in a fixed order with fixed names. It
// is pure.
func Evaluate(f *Facts) []Check {
	return []Check{
		checkUserns(f),
		checkUsernsMount(f),
		checkOverlay(f),
		checkFuse(f),
		checkTool(f.FuseOverlayfs, f.Distro.Install("fuse-overlayfs"), "images fall back to it when kernel overlayfs is not allowed"),
		checkTool(f.Nsenter, f.Distro.Install("util-linux"), "starts fuse-overlayfs in the sandbox's user namespace"),
		checkHelpers(f),
		checkSubIDs(f, idmap.UID),
		checkSubIDs(f, idmap.GID),
		checkTool(f.Pasta, f.Distro.Install("passt"), "user-mode networking"),
		checkTool(f.Slirp4netns, f.Distro.Install("slirp4netns"), "user-mode networking and published ports"),
		checkCgroup2(f),
		checkDelegation(f),
		checkSystemdUser(f),
		checkRuntimeDir(f),
		checkLinger(f),
	}
}

// Failed counts the checks that are not OK, required and recommended.
func Failed(checks []Check) (required, recommended int) {
	for _, c := range checks {
		switch {
		case c.OK:
		case c.Required:
			required++
		default:
			recommended++
		}
	}
	return required, recommended
}

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters of ordinary paths.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%=,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// userArg is the user's name as a command argument.
func (f *Facts) userArg() string {
	if f.User == "" || strings.ContainsAny(f.User, " \t\n'\"\\$`;&|<>()*?") {
		return "$(id -un)"
	}
	return f.User
}

func checkUserns(f *Facts) Check {
	c := Check{Name: "userns", Required: true}
	if f.CloneErr == nil {
		c.OK = true
		c.Detail = "a user namespace can be created"
		if f.Userns.MaxUserNamespaces >= 0 {
			c.Detail += fmt.Sprintf(" (%s=%d)", sysctlMaxUserns, f.Userns.MaxUserNamespaces)
		}
		if b := f.Userns.CloneBlocker(); b != "" && f.UID == 0 {
			c.Detail += "; as root only: " + b + ", which refuses other users"
		}
		return c
	}
	c.Detail = "cannot create a user namespace: " + describeCloneErr(f.CloneErr)
	if b := f.Userns.CloneBlocker(); b != "" {
		c.Detail += "; " + b
	} else if errors.Is(f.CloneErr, syscall.EPERM) {
		c.Detail += "; no sysctl forbids it, so a seccomp filter or security module (a container runtime's) does"
	}
	c.Fixes = f.Userns.CloneFixes(f.CloneErr)
	return c
}

func describeCloneErr(err error) string {
	if errors.Is(err, syscall.ENOENT) {
		// clone(2) never says ENOENT; the exec of /proc/self/exe did.
		return "cannot start " + selfExeName + ": " + errnoName(err) + " (is /proc mounted?)"
	}
	var ce *CloneError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	return err.Error()
}

// selfExeName is how the checks name the binary the probes re-exec.
const selfExeName = "/proc/self/exe"

func checkUsernsMount(f *Facts) Check {
	c := Check{Name: "userns-mount", Required: true}
	m := f.Mounts
	switch {
	case f.CloneErr != nil:
		c.Detail = "not tried: no user namespace"
	case m.Err != nil:
		c.Detail = "could not run the mount probe: " + describeCloneErr(m.Err)
	case !m.Ran:
		c.Detail = "not tried"
	case m.Mount != nil:
		c.Detail = "mounting inside a user namespace failed: " + m.Mount.Error()
		if f.Userns.RestrictsCapabilities() && (errors.Is(m.Mount, syscall.EPERM) || errors.Is(m.Mount, syscall.EACCES)) {
			c.Detail += "; " + sysctlAppArmorRestrict + " is 1, so AppArmor takes the namespace's capabilities away"
			c.Fixes = AppArmorFixes(f.Executable)
		}
	default:
		c.OK = true
		c.Detail = "a user namespace can mount (tmpfs)"
	}
	return c
}

func checkOverlay(f *Facts) Check {
	c := Check{Name: "overlay"}
	m := f.Mounts
	where := m.Dir
	if m.FSType != "" {
		where = fmt.Sprintf("%s (%s)", m.Dir, m.FSType)
	}
	switch {
	case f.CloneErr != nil || m.Err != nil || !m.Ran || m.Mount != nil:
		c.Detail = "not tried: mounting in a user namespace does not work (see userns-mount)"
	case m.Overlay != nil:
		c.Detail = fmt.Sprintf("kernel overlayfs in a user namespace failed on %s: %s", where, m.Overlay.Error())
		if ok, known := kernelAtLeast(f.Kernel, 5, 11); known && !ok {
			c.Detail += fmt.Sprintf("; Linux %s is older than 5.11, the first to allow it", f.Kernel)
		}
		c.Detail += "; images need fuse-overlayfs instead"
	default:
		c.OK = true
		c.Detail = "kernel overlayfs mounts in a user namespace on " + where
		if m.OverlayOptions != "" {
			c.Detail += " with " + m.OverlayOptions
		}
	}
	return c
}

// kernelAtLeast compares the major.minor of release (uname -r) with
// major.minor; known is false when release does not start with numbers.
func kernelAtLeast(release string, major, minor int) (ok, known bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false, false
	}
	ma, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	mi, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return false, false
	}
	return ma > major || (ma == major && mi >= minor), true
}

func checkFuse(f *Facts) Check {
	c := Check{Name: "fuse"}
	if f.FuseErr == nil {
		c.OK = true
		c.Detail = "/dev/fuse can be opened"
		return c
	}
	c.Detail = "cannot open /dev/fuse: " + errnoName(f.FuseErr) + "; fuse-overlayfs cannot run"
	switch {
	case errors.Is(f.FuseErr, syscall.ENOENT), errors.Is(f.FuseErr, syscall.ENODEV), errors.Is(f.FuseErr, syscall.ENXIO):
		c.Fixes = []string{"sudo modprobe fuse"}
	case errors.Is(f.FuseErr, syscall.EACCES), errors.Is(f.FuseErr, syscall.EPERM):
		// 0666 is the mode the kernel and udev give it (devices.txt).
		c.Fixes = []string{"sudo chmod 0666 /dev/fuse"}
	}
	return c
}

func checkTool(t Tool, install, purpose string) Check {
	c := Check{Name: t.Name}
	switch {
	case t.Path == "":
		c.Detail = "not found on PATH (" + purpose + ")"
		c.Fixes = []string{install}
	case t.Err != nil:
		c.Detail = fmt.Sprintf("%s does not run: %v", t.Path, t.Err)
		c.Fixes = []string{install}
	default:
		c.OK = true
		c.Detail = t.Path
		if t.Version != "" {
			c.Detail += " (" + t.Version + ")"
		}
	}
	return c
}

func checkHelpers(f *Facts) Check {
	c := Check{Name: "uidmap"}
	if f.HelpersErr == nil {
		c.OK = true
		c.Detail = fmt.Sprintf("newuidmap %s, newgidmap %s", f.Helpers.NewUIDMap, f.Helpers.NewGIDMap)
		return c
	}
	c.Detail = f.HelpersErr.Error() + "; sandboxes map only your own ids"
	var missing *idmap.HelperMissingError
	var unpriv *idmap.HelperNotPrivilegedError
	switch {
	case errors.As(f.HelpersErr, &missing):
		c.Fixes = []string{f.Distro.Install("uidmap")}
	case errors.As(f.HelpersErr, &unpriv):
		c.Fixes = []string{fmt.Sprintf("sudo chown root:root %s && sudo chmod u+s %s", shellQuote(unpriv.Path), shellQuote(unpriv.Path))}
	}
	return c
}

func checkSubIDs(f *Facts, k idmap.Kind) Check {
	s, other := f.SubUIDs, f.SubGIDs
	if k == idmap.GID {
		s, other = f.SubGIDs, f.SubUIDs
	}
	c := Check{Name: "sub" + k.String()}
	// One usermod adds both kinds when both need it, so pasting either
	// check's fix once mends both.
	block := fmt.Sprintf("%d-%d", f.FreeSubID, uint64(f.FreeSubID)+SubIDBlockSize-1)
	addFlag := "--add-sub" + k.String() + "s " + block
	otherBad := other.Err != nil || other.Total() < SubIDBlockSize
	if otherBad {
		addFlag = "--add-subuids " + block + " --add-subgids " + block
	}
	usermod := "sudo usermod " + addFlag + " " + f.userArg()
	var parse *idmap.ParseError
	switch {
	case errors.As(s.Err, &parse):
		c.Detail = s.Err.Error() + "; sandboxes map only your own id"
		c.Fixes = []string{"sudoedit " + parse.File}
	case s.Err != nil:
		c.Detail = s.Err.Error() + "; sandboxes map only your own id"
		c.Fixes = []string{usermod}
	case s.Total() < SubIDBlockSize:
		c.Detail = fmt.Sprintf("%s from %s: %d ids, fewer than %d, so images that use higher %ss fail",
			formatRanges(s.Ranges), s.Source, s.Total(), SubIDBlockSize, k)
		c.Fixes = []string{usermod}
	default:
		c.OK = true
		c.Detail = fmt.Sprintf("%s from %s (%d ids)", formatRanges(s.Ranges), s.Source, s.Total())
	}
	return c
}

// formatRanges renders ranges the way usermod --add-subuids takes them.
func formatRanges(rs []idmap.Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d-%d", r.Start, uint64(r.Start)+uint64(r.Count)-1)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func checkCgroup2(f *Facts) Check {
	c := Check{Name: "cgroup2"}
	g := f.Cgroup
	own := ""
	if g.Own != "" {
		own = "; own cgroup " + g.Own
	}
	switch g.Layout {
	case CgroupUnified:
		c.OK = true
		c.Detail = g.V2Mount + " is cgroup2 (unified)" + own
		return c
	case CgroupHybrid:
		c.Detail = fmt.Sprintf("hybrid: cgroup v1 controllers under %s, cgroup2 without controllers at %s%s; limits need cgroup v2", cgroupRoot, g.V2Mount, own)
	case CgroupLegacy:
		c.Detail = "cgroup v1 only under " + cgroupRoot + "; limits need cgroup v2"
	default:
		c.Detail = "no cgroup file system is mounted; limits need cgroup v2"
	}
	if !f.Systemd.Booted {
		c.Detail += "; systemd is not PID 1, so whatever mounts " + cgroupRoot + " at boot decides"
		return c
	}
	c.Fixes = unifiedCgroupFixes(f.Distro)
	return c
}

// unifiedCgroupFixes boot the kernel with systemd's switch to the unified
// hierarchy (systemd.unified_cgroup_hierarchy, systemd(1)).
func unifiedCgroupFixes(d Distro) []string {
	const arg = "systemd.unified_cgroup_hierarchy=1"
	inst := d.Install("x")
	switch {
	case strings.HasPrefix(inst, "sudo apt-get "):
		return []string{`sudo sed -i 's/^GRUB_CMDLINE_LINUX="/&` + arg + ` /' /etc/default/grub && sudo update-grub && sudo reboot`}
	case strings.HasPrefix(inst, "sudo dnf "):
		return []string{"sudo grubby --update-kernel=ALL --args=" + arg + " && sudo reboot"}
	}
	return []string{"add " + arg + " to the kernel command line"}
}

// delegateFix is the drop-in that delegates the limit controllers to every
// user manager (the one podman and systemd's own docs give; systemd.resource-control(5)
// Delegate=).
const delegateFix = `sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\nDelegate=cpu cpuset io memory pids\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload`

func checkDelegation(f *Facts) Check {
	c := Check{Name: "cgroup-delegation"}
	g := f.Cgroup
	switch {
	case g.Layout != CgroupUnified:
		c.Detail = "not checked: needs cgroup v2 (see cgroup2)"
	case g.ControllersErr != nil:
		c.Detail = fmt.Sprintf("cannot read the controllers of %s: %s", g.Delegated, errnoName(unwrapPathError(g.ControllersErr)))
		if errors.Is(g.ControllersErr, fs.ErrNotExist) && f.Systemd.Booted {
			c.Detail += "; your systemd user manager is not running"
			c.Fixes = []string{"sudo loginctl enable-linger " + f.userArg()}
		}
	default:
		have := strings.Join(g.Controllers, " ")
		if have == "" {
			have = "none"
		}
		if missing := MissingControllers(g.Controllers); len(missing) > 0 {
			c.Detail = fmt.Sprintf("%s not delegated to %s (it has: %s); limits on them cannot be applied",
				strings.Join(missing, " "), g.Delegated, have)
			c.Fixes = []string{delegateFix}
			return c
		}
		c.OK = true
		c.Detail = fmt.Sprintf("%s has %s", g.Delegated, have)
	}
	return c
}

func checkSystemdUser(f *Facts) Check {
	c := Check{Name: "systemd-user"}
	switch {
	case f.Systemd.UserSocket != "":
		c.OK = true
		c.Detail = "user manager reachable at " + f.Systemd.UserSocket
	case !f.Systemd.Booted:
		c.Detail = "systemd is not PID 1 on this host (no /run/systemd/system); limits cannot be delegated through it"
	case f.RuntimeDir.Path == "":
		c.Detail = "not checked: XDG_RUNTIME_DIR is not set (see runtime-dir)"
	default:
		c.Detail = fmt.Sprintf("no socket at %s/systemd/private or %s/bus: no user manager for this session", f.RuntimeDir.Path, f.RuntimeDir.Path)
		// Lingering starts user@UID.service now; su and sudo sessions
		// get none of their own, machinectl shell does.
		c.Fixes = []string{"sudo loginctl enable-linger " + f.userArg(), "sudo machinectl shell " + f.userArg() + "@"}
	}
	return c
}

func checkRuntimeDir(f *Facts) Check {
	c := Check{Name: "runtime-dir"}
	r := f.RuntimeDir
	want := fmt.Sprintf("/run/user/%d", f.UID)
	create := fmt.Sprintf("sudo install -d -m 0700 -o %d -g %d %s", f.UID, f.GID, want)
	switch {
	case r.Path == "":
		c.Detail = "XDG_RUNTIME_DIR is not set"
		c.Fixes = []string{create + " && export XDG_RUNTIME_DIR=" + want}
	case r.Err != nil:
		c.Detail = fmt.Sprintf("XDG_RUNTIME_DIR=%s: %s", r.Path, errnoName(r.Err))
		if errors.Is(r.Err, fs.ErrNotExist) && r.Path == want {
			c.Fixes = []string{create}
		} else {
			c.Fixes = []string{create + " && export XDG_RUNTIME_DIR=" + want}
		}
	case !r.IsDir:
		c.Detail = fmt.Sprintf("XDG_RUNTIME_DIR=%s is not a directory", r.Path)
		c.Fixes = []string{create + " && export XDG_RUNTIME_DIR=" + want}
	case r.Owner >= 0 && r.Owner != int64(f.UID):
		c.Detail = fmt.Sprintf("XDG_RUNTIME_DIR=%s is owned by uid %d, not %d", r.Path, r.Owner, f.UID)
		c.Fixes = []string{create + " && export XDG_RUNTIME_DIR=" + want}
	case r.Perm != 0o700:
		c.Detail = fmt.Sprintf("XDG_RUNTIME_DIR=%s has mode %04o, not 0700", r.Path, r.Perm)
		c.Fixes = []string{"chmod 0700 " + shellQuote(r.Path)}
	default:
		c.OK = true
		c.Detail = r.Path
	}
	return c
}

func checkLinger(f *Facts) Check {
	c := Check{Name: "linger"}
	switch {
	case f.Systemd.Linger:
		c.OK = true
		c.Detail = "enabled: your user manager runs without a login session"
	case !f.Systemd.Booted:
		c.Detail = "systemd is not PID 1 on this host; detached sandboxes end with your session unless something else keeps them"
	default:
		c.Detail = "not enabled: your user manager, and detached sandboxes under it, stop when you log out"
		c.Fixes = []string{"sudo loginctl enable-linger " + f.userArg()}
	}
	return c
}
