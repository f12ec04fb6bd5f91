package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// selfExe is our own binary, re-exec'd for the probes: it is static, always
// there (even when the file was replaced since we started) and knows
// ProbeCommand.
const selfExe = "/proc/self/exe"

// ProbeMain runs a probe inside the namespaces the parent cloned for it and
// returns the exit code. args are what follows ProbeCommand:
//
//	true          exit 0: the clone and exec worked, which is the answer
//	overlay DIR   the mount probe described at stepPrivate, on DIR
//
// Results go to stdout, a pipe the parent reads; 2 means bad arguments.
func ProbeMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "%s: no probe named\n", ProbeCommand)
		return 2
	}
	switch args[0] {
	case "true":
		return 0
	case "overlay":
		if len(args) != 2 || !filepath.IsAbs(args[1]) {
			fmt.Fprintf(os.Stderr, "%s overlay: want one absolute directory\n", ProbeCommand)
			return 2
		}
		mountProbe(os.Stdout, args[1])
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s: unknown probe %q\n", ProbeCommand, args[0])
	return 2
}

// mountProbe runs the steps in the child and reports each on w.
func mountProbe(w io.Writer, dir string) {
	report := func(step string, err error, detail string) bool {
		n := 0
		if err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) {
				n = int(errno)
			} else {
				n = int(syscall.EIO)
			}
		}
		if detail != "" {
			fmt.Fprintf(w, "%s %d %s\n", step, n, detail)
		} else {
			fmt.Fprintf(w, "%s %d\n", step, n)
		}
		return err == nil
	}
	if err := os.Chdir(dir); err != nil {
		report(stepPrivate, err, "chdir")
		return
	}
	// A mount namespace owned by a new user namespace already gets the
	// host's shared mounts as slaves (mount_namespaces(7)); making them
	// private says so explicitly and costs nothing.
	if !report(stepPrivate, unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""), "") {
		return
	}
	err := unix.Mount("sandbox-probe", "merged", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700")
	if err == nil {
		err = unix.Unmount("merged", unix.MNT_DETACH)
	}
	if !report(stepTmpfs, err, "") {
		return
	}
	// Inside a user namespace overlayfs cannot use trusted.* xattrs;
	// userxattr (Linux 5.11, the release that allowed the mount at all)
	// keeps its metadata in user.overlay.* instead. Older kernels reject
	// the option with EINVAL, so try without it before giving up.
	opts, detail := "lowerdir=lower,upperdir=upper,workdir=work,userxattr", "userxattr"
	err = unix.Mount("overlay", "merged", "overlay", 0, opts)
	if errors.Is(err, unix.EINVAL) {
		opts, detail = "lowerdir=lower,upperdir=upper,workdir=work", ""
		err = unix.Mount("overlay", "merged", "overlay", 0, opts)
	}
	if !report(stepOverlay, err, detail) {
		return
	}
	err = appendFile("merged/file")
	if err == nil {
		_, err = os.Stat("upper/file")
	}
	report(stepCopyUp, err, "")
}

func appendFile(name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("copied up\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// probeTimeout bounds one probe process: a clone and a Go start take a few
// milliseconds, so a probe still running after this is stuck.
const probeTimeout = 5 * time.Second

// CloneError is a probe process that could not be started in its new
// namespaces: clone(2) refused the flags, the id map could not be written,
// or the exec failed.
type CloneError struct {
	Flags string // e.g. "CLONE_NEWUSER|CLONE_NEWNS"
	Err   error  // the errno
}

func (e *CloneError) Error() string {
	return fmt.Sprintf("clone(%s): %s", e.Flags, errnoName(e.Err))
}

func (e *CloneError) Unwrap() error { return e.Err }

// ProbeUserns starts our own binary in a new user and mount namespace and
// returns nil when it ran, else a *CloneError carrying the errno.
func ProbeUserns(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := probeCmd(ctx, nil, "true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return startError(runLocked(cmd), &stderr)
}

// ProbeMounts makes a temporary directory in parent (os.TempDir() when ""),
// runs the mount probe in it as root of a new user and mount namespace
// holding only uid and gid, and removes the directory again.
func ProbeMounts(ctx context.Context, parent string, uid, gid uint32) MountFacts {
	if parent == "" {
		parent = os.TempDir()
	}
	m := MountFacts{Dir: parent, FSType: FSType(parent)}
	dir, err := os.MkdirTemp(parent, "sandbox-probe-")
	if err != nil {
		m.Err = err
		return m
	}
	defer removeProbeDir(dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			m.Err = err
			return m
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "lower", "file"), []byte("lower\n"), 0o600); err != nil {
		m.Err = err
		return m
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ids := &idMaps{
		uids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid), Size: 1}},
		gids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(gid), Size: 1}},
	}
	cmd := probeCmd(ctx, ids, "overlay", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = runLocked(cmd)
	if stdout.Len() == 0 && err != nil {
		m.Err = startError(err, &stderr)
		return m
	}
	parseProbeOutput(stdout.Bytes(), &m)
	return m
}

type idMaps struct{ uids, gids []syscall.SysProcIDMap }

// probeCmd is our binary running a probe in a new user and mount
// namespace, killed with us, with an empty environment.
func probeCmd(ctx context.Context, ids *idMaps, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, selfExe, append([]string{ProbeCommand}, args...)...)
	cmd.Env = []string{}
	cmd.WaitDelay = time.Second
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if ids != nil {
		attr.UidMappings = ids.uids
		attr.GidMappings = ids.gids
		// An unprivileged process may write a gid_map only after denying
		// setgroups (user_namespaces(7), Linux 3.19).
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return cmd
}

// runLocked runs cmd from a thread that stays alive until it has exited:
// Pdeathsig fires when the thread that forked the child ends, and Go may
// end an idle thread that is not locked (prctl(2) PR_SET_PDEATHSIG).
func runLocked(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}

// startError turns the error of running a probe into a *CloneError when
// the process did not start, and into an error with the child's stderr
// when it started and failed.
func startError(err error, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) > 512 {
			msg = msg[:512]
		}
		if len(msg) > 0 {
			return fmt.Errorf("probe: %w: %s", err, msg)
		}
		return fmt.Errorf("probe: %w", err)
	case errors.As(err, &errno):
		return &CloneError{Flags: "CLONE_NEWUSER|CLONE_NEWNS", Err: errno}
	}
	return err
}

// removeProbeDir removes the probe's directory. overlayfs leaves
// work/work behind with mode 0; it is empty, so rmdir needs no more than
// write access to work/, but make the tree writable and retry if the first
// pass fails anyway.
func removeProbeDir(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// OpenFuse opens and closes /dev/fuse, which fuse-overlayfs needs. nil
// means it can be opened read-write.
func OpenFuse() error {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// fsName names the file systems statfs(2) reports that matter here. A
// switch rather than a map: nothing to build at init, on every start.
func fsName(magic int64) string {
	switch magic {
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.CGROUP2_SUPER_MAGIC:
		return "cgroup2"
	case unix.CGROUP_SUPER_MAGIC:
		return "cgroup"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.FUSE_SUPER_MAGIC:
		return "fuse"
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	case unix.PROC_SUPER_MAGIC:
		return "proc"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay"
	case unix.RAMFS_MAGIC:
		return "ramfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case 0x2fc12fc1:
		return "zfs"
	case 0xff534d42:
		return "cifs"
	case 0x01021997:
		return "9p"
	}
	return ""
}

// FSType returns the file system type of path by statfs(2), its magic
// number in hex when unknown, or "" when statfs fails.
func FSType(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return ""
	}
	if n := fsName(int64(st.Type)); n != "" {
		return n
	}
	return fmt.Sprintf("0x%x", uint64(st.Type))
}

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// runVersion runs "prog --version" and returns its version line.
func runVersion(ctx context.Context, name, prog string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, "--version")
	cmd.Env = []string{"LC_ALL=C"}
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	line := VersionLine(name, out.Bytes())
	if err != nil && line == "" {
		return "", fmt.Errorf("%s --version: %w", prog, err)
	}
	return line, nil
}
