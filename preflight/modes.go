package preflight

import "fmt"

// Root file system modes for images, best first (DESIGN.md, "Degrade
// visibly").
const (
	RootfsKernelOverlay = "kernel overlay"
	RootfsFuseOverlayfs = "fuse-overlayfs"
	RootfsNone          = "none"
)

// ImageRootfs says how an image's root would be assembled now, and why
// the better modes are out when it is not the best.
func (f *Facts) ImageRootfs() (mode, reason string) {
	m := f.Mounts
	var why string
	switch {
	case f.CloneErr != nil:
		why = "no user namespace"
	case m.Err != nil:
		why = "the mount probe did not run: " + m.Err.Error()
	case !m.Ran:
		why = "the mount probe did not run"
	case m.Mount != nil:
		why = "mounting in a user namespace failed: " + m.Mount.Error()
	case m.Overlay != nil:
		why = "kernel overlay failed: " + m.Overlay.Error()
	default:
		return RootfsKernelOverlay, ""
	}
	switch {
	case f.FuseOverlayfs.Path == "":
		return RootfsNone, why + "; fuse-overlayfs not found"
	case f.FuseErr != nil:
		return RootfsNone, why + "; /dev/fuse: " + errnoName(f.FuseErr)
	case m.Mount != nil || f.CloneErr != nil:
		// fuse-overlayfs mounts inside the user namespace too.
		return RootfsNone, why
	}
	return RootfsFuseOverlayfs, why
}

// ImageRootfsWith is ImageRootfs under the overlay setting of the image
// configuration file: "kernel", "fuse", or "auto"/"" (ImageRootfs).
func (f *Facts) ImageRootfsWith(setting string) (mode, reason string) {
	mode, why := f.ImageRootfs()
	const in = " in images.toml"
	switch setting {
	case "kernel":
		if mode == RootfsKernelOverlay {
			return mode, ""
		}
		return RootfsNone, `overlay = "kernel"` + in + ", but " + why
	case "fuse":
		var no string
		switch {
		case f.CloneErr != nil:
			no = "no user namespace"
		case f.Mounts.Mount != nil:
			no = "mounting in a user namespace failed: " + f.Mounts.Mount.Error()
		case f.FuseOverlayfs.Path == "":
			no = "fuse-overlayfs not found"
		case f.FuseErr != nil:
			no = "/dev/fuse: " + errnoName(f.FuseErr)
		default:
			return RootfsFuseOverlayfs, `overlay = "fuse"` + in
		}
		return RootfsNone, `overlay = "fuse"` + in + ", but " + no
	}
	return mode, why
}

// Networks lists the user-mode network helpers found, in the order the
// slirp package prefers them.
func (f *Facts) Networks() []string {
	var out []string
	for _, t := range []Tool{f.Pasta, f.Slirp4netns} {
		if t.Path != "" && t.Err == nil {
			out = append(out, t.Name)
		}
	}
	return out
}

// LimitsVia is the way resource limits are applied when they can be.
const LimitsVia = "systemd user manager"

// Limits says whether resource limits can be applied now: through the
// systemd user manager, on cgroup v2. reason says why not.
func (f *Facts) Limits() (ok bool, reason string) {
	switch {
	case f.Cgroup.Layout != CgroupUnified:
		return false, fmt.Sprintf("cgroup layout is %s, limits need cgroup v2", f.Cgroup.Layout)
	case f.Systemd.UserSocket == "" && !f.Systemd.Booted:
		return false, "systemd is not PID 1"
	case f.Systemd.UserSocket == "":
		return false, "no systemd user manager reachable"
	}
	return true, ""
}
