package userns

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/spec"
)

// rootBase is where the root tmpfs is attached before pivot_root. It is
// over-mounted only inside our private mount namespace; bind sources are
// opened as detached trees before it is covered, so a work directory under
// the host's /tmp is still reachable.
const rootBase = "/tmp"

// sourceTree is a bind source cloned once into a detached mount tree.
// Preconditions: opened in the child's mount namespace (open_tree clones
// only mounts of the caller's namespace).
type sourceTree struct {
	fd     int
	isDir  bool
	absent bool // an optional source that does not exist
}

// openSources clones every bind source into a detached tree and applies its
// flags to the tree, so the fd that was checked is the one mounted and
// nothing can swap the path afterwards.
func openSources(mounts []specs.Mount) ([]sourceTree, error) {
	trees := make([]sourceTree, len(mounts))
	for i := range trees {
		trees[i].fd = -1 // closeTrees skips them, also after an error midway
	}
	for i, m := range mounts {
		if m.Type != spec.MountBind {
			continue
		}
		flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
		if !spec.HasOption(m, "bind") || spec.HasOption(m, "rbind") {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, flags)
		if err != nil {
			if errors.Is(err, unix.ENOENT) && spec.HasOption(m, "optional") {
				trees[i].absent = true
				continue
			}
			closeTrees(trees)
			return nil, step("bind source", m.Source, err)
		}
		trees[i].fd = fd
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			closeTrees(trees)
			return nil, step("stat bind source", m.Source, err)
		}
		trees[i].isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID}
		if spec.HasOption(m, "ro") {
			attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
		}
		if spec.HasOption(m, "nodev") {
			attr.Attr_set |= unix.MOUNT_ATTR_NODEV
		}
		if spec.HasOption(m, "noexec") {
			attr.Attr_set |= unix.MOUNT_ATTR_NOEXEC
		}
		setFlags := uint(unix.AT_EMPTY_PATH)
		if flags&unix.AT_RECURSIVE != 0 {
			setFlags |= unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(fd, "", setFlags, &attr); err != nil {
			closeTrees(trees)
			return nil, step("set flags on bind", m.Source, err)
		}
	}
	return trees, nil
}

func closeTrees(trees []sourceTree) {
	for _, t := range trees {
		if t.fd >= 0 {
			unix.Close(t.fd)
		}
	}
}

// newFS creates a detached mount of a fresh filesystem of the given type.
func newFS(fstype string, m specs.Mount) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, step("fsopen "+fstype, m.Destination, err)
	}
	defer unix.Close(fsfd)
	var attrs int
	for _, o := range m.Options {
		name, val, hasVal := strings.Cut(o, "=")
		switch name {
		case "ro":
			attrs |= unix.MOUNT_ATTR_RDONLY
		case "nosuid":
			attrs |= unix.MOUNT_ATTR_NOSUID
		case "nodev":
			attrs |= unix.MOUNT_ATTR_NODEV
		case "noexec":
			attrs |= unix.MOUNT_ATTR_NOEXEC
		case "rw", "optional":
		case "newinstance":
			// devpts in a user namespace is always a new instance.
		default:
			if !hasVal {
				if err := unix.FsconfigSetFlag(fsfd, name); err != nil {
					return -1, step("mount option "+o, m.Destination, err)
				}
				continue
			}
			if err := unix.FsconfigSetString(fsfd, name, val); err != nil {
				return -1, step("mount option "+o, m.Destination, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, step("create "+fstype, m.Destination, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, step("fsmount "+fstype, m.Destination, err)
	}
	return mfd, nil
}

// openInRoot opens p (absolute, inside the root at rootfd) with every
// component resolved by the kernel inside the root: symlinks, including
// absolute ones and "..", cannot leave it (openat2 RESOLVE_IN_ROOT, Linux
// 5.6). Missing components are created as directories; when file is true
// the last component is created as an empty regular file.
func openInRoot(rootfd int, p string, file bool) (int, error) {
	rel := strings.TrimPrefix(path.Clean(p), "/")
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	if rel == "" {
		return unix.Openat2(rootfd, ".", how)
	}
	if fd, err := unix.Openat2(rootfd, rel, how); err == nil {
		return fd, nil
	} else if !errors.Is(err, unix.ENOENT) {
		return -1, err
	}
	parent, err := openInRoot(rootfd, path.Dir("/"+rel), false)
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	name := path.Base(rel)
	// mkdirat/openat on an O_PATH directory fd are fine: the name is a
	// single component, so no further resolution happens.
	if file {
		fd, err := unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
		if err == nil {
			unix.Close(fd)
		}
	} else if err := unix.Mkdirat(parent, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	return unix.Openat2(rootfd, rel, how)
}

// attach moves the detached mount mfd onto dst inside the root. A
// destination that resolves to the root itself (through a symlink to "/"
// in a volume) is refused rather than stacked over the whole sandbox.
func attach(rootfd, mfd int, dst string, file bool) error {
	tfd, err := openInRoot(rootfd, dst, file)
	if err != nil {
		return step("mount point", dst, err)
	}
	defer unix.Close(tfd)
	var rst, tst unix.Stat_t
	if unix.Fstat(rootfd, &rst) == nil && unix.Fstat(tfd, &tst) == nil && rst.Dev == tst.Dev && rst.Ino == tst.Ino {
		return step("mount point", dst, fmt.Errorf("resolves to the root of the sandbox"))
	}
	if err := unix.MoveMount(mfd, "", tfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return step("mount", dst, err)
	}
	return nil
}

// buildRoot assembles the root in a fresh tmpfs and returns an fd on it.
// Preconditions: in the new user and mount namespaces with CAP_SYS_ADMIN,
// id maps written, PID namespace entered (for /proc).
// serveFuse hands the FUSE device of a fuse-overlayfs root and the
// sandbox's user namespace to the parent, which starts the daemon.
func buildRoot(s *childSpec, serveFuse func(dev, userns int) error) (int, error) {
	rootfd, trees, err := assembleRoot(s, serveFuse, rootBase)
	closeTrees(trees)
	return rootfd, err
}

// assembleRoot is buildRoot with the root attached on base, which also
// returns the trees of the bind sources (their fds refer to what was
// bound; the caller closes them). On an error nothing of the root is left
// attached.
func assembleRoot(s *childSpec, serveFuse func(dev, userns int) error, base string) (rootfd int, trees []sourceTree, err error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return -1, nil, step("make mounts private", "/", err)
	}
	if trees, err = openSources(s.OCI.Mounts); err != nil {
		return -1, nil, err
	}
	rootfd, err = attachRoot(s, serveFuse, trees, base)
	if err != nil {
		closeTrees(trees)
		return -1, nil, err
	}
	return rootfd, trees, nil
}

// attachRoot creates the root, attaches it on base and mounts trees and
// the other mounts of s in it. On an error it detaches the root again (a
// root of layers may leave its writable tmpfs below: the init exits).
func attachRoot(s *childSpec, serveFuse func(dev, userns int) error, trees []sourceTree, base string) (int, error) {
	var (
		rootfd int
		err    error
	)
	if s.Rootfs != nil {
		rootfd, err = layeredRoot(s.Rootfs, serveFuse)
	} else {
		rootfd, err = newFS("tmpfs", specs.Mount{Destination: "/", Options: []string{"mode=0755", "nosuid", "nodev"}})
	}
	if err != nil {
		return -1, err
	}
	if err := unix.MoveMount(rootfd, "", unix.AT_FDCWD, base, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		unix.Close(rootfd)
		return -1, step("mount root on", base, err)
	}
	fail := func(err error) (int, error) {
		unix.Close(rootfd)
		unix.Unmount(base, unix.MNT_DETACH)
		return -1, err
	}
	if s.Rootfs != nil {
		if err := refuseLinkedKernelDirs(rootfd); err != nil {
			return fail(err)
		}
	}
	for i, m := range s.OCI.Mounts {
		if err := mountOne(rootfd, m, trees[i]); err != nil {
			return fail(err)
		}
	}
	if err := maskPaths(rootfd, s.OCI.Linux.MaskedPaths); err != nil {
		return fail(err)
	}
	if err := readOnlyPaths(rootfd, s.OCI.Linux.ReadonlyPaths); err != nil {
		return fail(err)
	}
	for _, l := range s.Symlinks {
		if err := symlinkInRoot(rootfd, l); err != nil {
			return fail(err)
		}
	}
	if s.Rootfs != nil && s.Rootfs.ReadOnly {
		// Last: the mount points above were made in the writable layer.
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(rootfd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return fail(step("make the root read-only", "/", err))
		}
	}
	return rootfd, nil
}

// prebuilt is a root that a pre-spawned init built from a speculative
// spec (the spec of the run before, see Speculation) while it waited for
// its own. The run's spec then takes it only if it would build the same
// root now: the same mounts, masks and symlinks (rootKey), and every bind
// source still resolving to the very file or directory that was bound
// (another one created at the same path since, or a symlink pointing
// elsewhere, would not be seen through the old bind). Mounts made or
// removed on the host in between are the pre-spawner's check: the run
// compares the mount table with the one the init was cloned with.
type prebuilt struct {
	spec   *childSpec // the speculative spec it was built from
	rootfd int
	trees  []sourceTree // the bound sources, open until the root is taken or discarded
}

// speculationBase is where a root built ahead waits, attached: not on
// rootBase, whose host directory /tmp holds work directories often, and
// the check of a bind source below it would find the root in the way.
// A bind source below /proc is as rare as one below /tmp is common; its
// check fails the same way, and the run builds its own root.
const speculationBase = "/proc"

// speculate builds the root of the speculative spec s ahead. It returns
// nil when it could not: the run then builds its own.
// Preconditions: as for buildRoot, and a root without layers.
func speculate(s *childSpec) *prebuilt {
	rootfd, trees, err := assembleRoot(s, nil, speculationBase)
	if err != nil {
		return nil
	}
	return &prebuilt{spec: s, rootfd: rootfd, trees: trees}
}

// take returns the root for s when it is the one s would build, and
// otherwise discards it and returns -1. Either way p is spent.
func (p *prebuilt) take(s *childSpec) int {
	defer closeTrees(p.trees)
	if sameRoot(p.spec, s) && p.current() {
		return p.rootfd
	}
	unix.Close(p.rootfd)
	unix.Unmount(speculationBase, unix.MNT_DETACH)
	return -1
}

// current tells whether every bind source still resolves to what was
// bound: the same inode, still linked (inode numbers are unique only
// among live inodes), and an optional source that was absent still is.
func (p *prebuilt) current() bool {
	for i, m := range p.spec.OCI.Mounts {
		if m.Type != spec.MountBind {
			continue
		}
		var now, then unix.Stat_t
		err := unix.Stat(m.Source, &now)
		if p.trees[i].absent {
			if !errors.Is(err, unix.ENOENT) {
				return false
			}
			continue
		}
		if err != nil || unix.Fstat(p.trees[i].fd, &then) != nil {
			return false
		}
		if then.Nlink == 0 || then.Dev != now.Dev || then.Ino != now.Ino {
			return false
		}
	}
	return true
}

// layeredRoot creates a detached root of r's layers with the overlay r
// asks for.
func layeredRoot(r *spec.Rootfs, serveFuse func(dev, userns int) error) (int, error) {
	switch r.Overlay {
	case spec.OverlayFuse:
		return fuseRoot(serveFuse)
	case spec.OverlayAuto:
		fd, err := overlayRoot(r)
		var ke *kernelOverlayError
		if err == nil || r.Upper == "" || !errors.As(err, &ke) {
			return fd, err
		}
		fd, ferr := fuseRoot(serveFuse)
		if ferr != nil {
			// The fuse-overlayfs failure is the one to report: the
			// kernel's refusal is why it was tried, not what failed.
			return -1, fmt.Errorf("fuse-overlayfs after kernel overlayfs refused (%v): %w", err, ferr)
		}
		return fd, nil
	}
	return overlayRoot(r)
}

// kernelOverlayError is the kernel refusing the overlay mount itself (as
// opposed to a layer that cannot be opened): what makes OverlayAuto fall
// back to fuse-overlayfs.
type kernelOverlayError struct{ err error }

func (e *kernelOverlayError) Error() string { return e.err.Error() }
func (e *kernelOverlayError) Unwrap() error { return e.err }

// fuseRoot creates a detached FUSE mount for fuse-overlayfs and has the
// parent start the daemon on it (package fuseoverlay). The device is
// opened here because the kernel wants it opened in the mount's user
// namespace. Requests wait in the kernel until the daemon answers them;
// if it never does, the connection aborts when the last device fd is
// closed, and the first access to the root fails with ENOTCONN.
// Preconditions: as for overlayRoot.
func fuseRoot(serve func(dev, userns int) error) (int, error) {
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, step("open", "/dev/fuse", err)
	}
	defer unix.Close(dev)
	fsfd, err := unix.Fsopen("fuse", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, step("fsopen fuse", "/", err)
	}
	defer unix.Close(fsfd)
	// rootmode: a directory; user_id/group_id: root of the sandbox, the
	// mount's owner; allow_other: every id inside may use it (FUSE lets
	// only processes of the mount's user namespace in, whatever this
	// says); default_permissions: the kernel checks modes and owners.
	for _, kv := range [][2]string{{"fd", strconv.Itoa(dev)}, {"rootmode", "40000"}, {"user_id", "0"}, {"group_id", "0"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return -1, step("fuse option", kv[0], err)
		}
	}
	for _, flag := range []string{"allow_other", "default_permissions"} {
		if err := unix.FsconfigSetFlag(fsfd, flag); err != nil {
			return -1, step("fuse option", flag, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, step("create fuse root", "/", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, step("mount fuse root", "/", err)
	}
	ns, err := unix.Open("/proc/self/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(mfd)
		return -1, step("open", "/proc/self/ns/user", err)
	}
	defer unix.Close(ns)
	if err := serve(dev, ns); err != nil {
		unix.Close(mfd)
		return -1, step("hand over", "fuse root", err)
	}
	return mfd, nil
}

// overlayRoot creates a detached overlay of r's layers. The layers are
// handed to the kernel as /proc/self/fd/N of directories opened here, so
// the directories checked are the ones used, and host paths covered by
// the mounts that follow (a root image under the host's /tmp) stay
// reachable. Without an upper directory the writable layer is a tmpfs of
// the sandbox's own, discarded with it.
// Preconditions: in the sandbox's user and mount namespaces with
// CAP_SYS_ADMIN (overlayfs mounts in a user namespace: Linux 5.11).
func overlayRoot(r *spec.Rootfs) (int, error) {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	dir := func(p string, at int) (string, error) {
		fd, err := unix.Openat(at, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		fds = append(fds, fd)
		return "/proc/self/fd/" + strconv.Itoa(fd), nil
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, &kernelOverlayError{step("fsopen overlay", "/", err)}
	}
	defer unix.Close(fsfd)
	var lower []string
	for _, l := range r.Lower {
		p, err := dir(l, unix.AT_FDCWD)
		if err != nil {
			return -1, step("root layer", l, err)
		}
		lower = append(lower, p)
	}
	// "lowerdir+" appends one layer below those given (Linux 6.8); before
	// it, one "lowerdir" lists them all, which the fd paths keep short.
	for i, p := range lower {
		err := unix.FsconfigSetString(fsfd, "lowerdir+", p)
		if i == 0 && errors.Is(err, unix.EINVAL) {
			err = unix.FsconfigSetString(fsfd, "lowerdir", strings.Join(lower, ":"))
			if err != nil {
				return -1, &kernelOverlayError{step("overlay layers", strings.Join(r.Lower, ":"), err)}
			}
			break
		}
		if err != nil {
			return -1, &kernelOverlayError{step("overlay layer", r.Lower[i], err)}
		}
	}
	upper, work := r.Upper, r.Work
	at := unix.AT_FDCWD
	if upper == "" {
		tfd, err := newFS("tmpfs", specs.Mount{Destination: "/", Options: []string{"mode=0755"}})
		if err != nil {
			return -1, err
		}
		fds = append(fds, tfd)
		// Attached first: overlayfs refuses layers on a detached mount.
		// Under the overlay root that follows, nothing else sees it.
		if err := unix.MoveMount(tfd, "", unix.AT_FDCWD, rootBase, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return -1, step("mount writable layer on", rootBase, err)
		}
		for _, d := range []string{"upper", "work"} {
			if err := unix.Mkdirat(tfd, d, 0o755); err != nil {
				return -1, step("mkdir", "writable layer "+d, err)
			}
		}
		upper, work, at = "upper", "work", tfd
	}
	for _, kv := range [][2]string{{"upperdir", upper}, {"workdir", work}} {
		p, err := dir(kv[1], at)
		if err != nil {
			return -1, step("root "+kv[0], kv[1], err)
		}
		if err := unix.FsconfigSetString(fsfd, kv[0], p); err != nil {
			return -1, &kernelOverlayError{step("overlay "+kv[0], kv[1], err)}
		}
	}
	// In a user namespace overlayfs keeps its metadata in user.overlay.*
	// xattrs, which the layers' owner may set.
	if err := unix.FsconfigSetFlag(fsfd, "userxattr"); err != nil {
		return -1, &kernelOverlayError{step("overlay option", "userxattr", err)}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, &kernelOverlayError{step("create overlay root", strings.Join(r.Lower, ":"), err)}
	}
	// nodev: device nodes in an image open nothing; setuid files gain
	// nothing either way (no_new_privs), nosuid says so twice.
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, &kernelOverlayError{step("mount overlay root", "/", err)}
	}
	return mfd, nil
}

// LinkedKernelDirError: the root has /proc, /dev or /sys as a symlink (or
// through one). Mounting there would put the kernel's files wherever the
// image points, and the masks after would miss them.
var errLinkedKernelDir = errors.New("is a symbolic link in the root image; refusing to mount the kernel's files through it")

// refuseLinkedKernelDirs fails when /proc, /dev or /sys of the root is a
// symlink or reached through one (CVE-2019-19921 and its kind).
func refuseLinkedKernelDirs(rootfd int) error {
	for _, p := range []string{"proc", "dev", "sys"} {
		fd, err := unix.Openat2(rootfd, p, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS,
		})
		switch {
		case err == nil:
			unix.Close(fd)
		case errors.Is(err, unix.ELOOP):
			return step("mount point", "/"+p, errLinkedKernelDir)
		case errors.Is(err, unix.ENOENT):
		default:
			return step("mount point", "/"+p, err)
		}
	}
	return nil
}

func mountOne(rootfd int, m specs.Mount, tree sourceTree) error {
	if m.Type == spec.MountBind {
		if tree.absent {
			return nil
		}
		return attach(rootfd, tree.fd, m.Destination, !tree.isDir)
	}
	mfd, err := newFS(m.Type, m)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	return attach(rootfd, mfd, m.Destination, false)
}

func symlinkInRoot(rootfd int, l spec.Symlink) error {
	parent, err := openInRoot(rootfd, path.Dir(l.Path), false)
	if err != nil {
		return step("symlink parent", l.Path, err)
	}
	defer unix.Close(parent)
	if err := unix.Symlinkat(l.Target, parent, path.Base(l.Path)); err != nil {
		return step("symlink", l.Path, err)
	}
	return nil
}

// pivot makes rootfd the root and detaches the old one.
// Preconditions: rootfd is a mount point (attached by buildRoot).
func pivot(rootfd int, skeleton bool) error {
	if err := unix.Fchdir(rootfd); err != nil {
		return step("chdir", "new root", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one at
	// the same place; unmounting "." then removes the old root
	// (pivot_root(2), "NOTES").
	if err := unix.PivotRoot(".", "."); err != nil {
		return step("pivot_root", "new root", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return step("detach old root", "/", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return step("chdir", "/", err)
	}
	if !skeleton {
		return nil // a root of its own is writable unless --read-only said
	}
	// The skeleton is read-only: nothing but the mounts in it is writable.
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &attr); err != nil {
		return step("make root read-only", "/", err)
	}
	return nil
}

// enterWorkdir changes into dir inside the new root and checks the result
// is really inside it (a directory reached through a leaked fd or a
// "/proc/self/cwd" path would not be; CVE-2024-21626).
func enterWorkdir(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return step("workdir", dir, err)
	}
	// getcwd(2) answers "(unreachable)/..." for a directory outside the
	// root; unix.Getwd reports that as an error.
	wd, err := unix.Getwd()
	if err != nil {
		return step("workdir", dir, err)
	}
	if !strings.HasPrefix(wd, "/") {
		return step("workdir", dir, fmt.Errorf("resolves outside the root (%s)", strconv.Quote(wd)))
	}
	return nil
}

// openExisting opens p inside the root without creating anything; a path
// absent on this kernel answers ENOENT.
func openExisting(rootfd int, p string) (int, error) {
	return unix.Openat2(rootfd, strings.TrimPrefix(path.Clean(p), "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
	})
}

// maskPaths covers each file with the sandbox's /dev/null and each
// directory with an empty read-only tmpfs. The /dev/null used is checked to
// be the real character device 1:3 first, so a mask can never expose a file.
// Preconditions: /proc and /dev/null are mounted in the root.
func maskPaths(rootfd int, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	null, err := openExisting(rootfd, "/dev/null")
	if err != nil {
		return step("open", "/dev/null", err)
	}
	defer unix.Close(null)
	var st unix.Stat_t
	if err := unix.Fstat(null, &st); err != nil {
		return step("stat", "/dev/null", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		return step("mask with", "/dev/null", fmt.Errorf("not the null device"))
	}
	return forEachExisting(rootfd, paths, "mask", func(target int, p string) error { return maskOne(null, target, p) })
}

// forEachExisting runs fn on an O_PATH fd of each path that exists inside
// the root; paths absent on this kernel are skipped.
func forEachExisting(rootfd int, paths []string, op string, fn func(target int, p string) error) error {
	for _, p := range paths {
		target, err := openExisting(rootfd, p)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return step(op, p, err)
		}
		err = fn(target, p)
		unix.Close(target)
		if err != nil {
			return err
		}
	}
	return nil
}

func maskOne(null, target int, p string) error {
	var st unix.Stat_t
	if err := unix.Fstat(target, &st); err != nil {
		return step("mask", p, err)
	}
	var mfd int
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mfd, err = newFS("tmpfs", specs.Mount{Destination: p, Options: []string{"ro", "mode=0555", "size=4k", "nosuid", "nodev", "noexec"}})
	} else {
		mfd, err = unix.OpenTree(null, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
		err = step("clone /dev/null for", p, err)
	}
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return step("mask", p, err)
	}
	return nil
}

// readOnlyPaths stacks a read-only clone of each path on itself.
func readOnlyPaths(rootfd int, paths []string) error {
	return forEachExisting(rootfd, paths, "read-only", readOnlyOne)
}

func readOnlyOne(target int, p string) error {
	tree, err := unix.OpenTree(target, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return step("clone for read-only", p, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return step("make read-only", p, err)
	}
	if err := unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return step("read-only", p, err)
	}
	return nil
}
