package fuseoverlay

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"sandbox/spec"
)

// The daemon runs outside the sandbox, as root of its user namespace: it
// may read and write every file of the caller's and of the subordinate
// ids that the host's mount table shows. A flaw in it that a request from
// inside could reach would reach all of that. So it starts confined by
// Landlock to what it serves: the layers (read), the writable layer
// (read and write), and the programs and libraries it runs (read and
// execute); no TCP (ABI 4) and no signals or abstract sockets out of its
// domain (ABI 6). With no_new_privs, which Landlock needs and which the
// daemon has no use for anyway.

// Rule is a file hierarchy and what the confined process may do in it.
type Rule struct {
	Path   string
	Access uint64 // LANDLOCK_ACCESS_FS_* bits
}

// Access sets for Rule.
const (
	// AccessRead reads files and lists directories.
	AccessRead = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	// AccessExec reads and executes.
	AccessExec = AccessRead | unix.LANDLOCK_ACCESS_FS_EXECUTE
	// AccessWrite is everything but executing: an overlay's writable layer.
	AccessWrite = fsV5 &^ unix.LANDLOCK_ACCESS_FS_EXECUTE
)

// The file-system rights each Landlock ABI version handles.
const (
	fsV1 = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	fsV2 = fsV1 | unix.LANDLOCK_ACCESS_FS_REFER
	fsV3 = fsV2 | unix.LANDLOCK_ACCESS_FS_TRUNCATE
	fsV5 = fsV3 | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// systemRules are the programs, libraries and their configuration that
// nsenter and fuse-overlayfs need; missing ones are left out.
var systemRules = []Rule{
	{"/usr", AccessExec}, {"/bin", AccessExec}, {"/sbin", AccessExec},
	{"/lib", AccessExec}, {"/lib64", AccessExec}, {"/lib32", AccessExec},
	{"/etc", AccessRead},
	// os/exec opens it, on the confined thread, for streams left nil.
	{"/dev/null", unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE},
}

// DaemonRules is what the daemon of r may reach: besides the system's
// files, the layers, the writable layer, and the overflow ids it shows
// for unmapped owners.
func DaemonRules(r *spec.Rootfs) []Rule {
	rules := append([]Rule(nil), systemRules...)
	rules = append(rules, Rule{"/proc/sys/kernel/overflowuid", AccessRead}, Rule{"/proc/sys/kernel/overflowgid", AccessRead})
	for _, l := range r.Lower {
		rules = append(rules, Rule{l, AccessRead})
	}
	return append(rules, Rule{r.Upper, AccessWrite}, Rule{r.Work, AccessWrite})
}

// ErrNoLandlock is a kernel without Landlock (before 5.13, or not
// enabled): StartConfined then starts the process with no_new_privs only.
var ErrNoLandlock = errors.New("no Landlock in this kernel")

// StartConfined starts cmd confined to rules, and waits for it on the
// same thread, calling done with Wait's result. The restriction is made on
// a thread of its own, locked and never returned to the runtime, and cmd
// is forked from it, so nothing else of this process is confined; the
// thread lives until cmd has exited, which a parent-death signal of cmd's
// needs. The returned error is Start's, or the confinement's, except
// ErrNoLandlock, which is returned with cmd started.
func StartConfined(cmd *exec.Cmd, rules []Rule, done func(error)) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with this goroutine.
		lerr := restrictThread(rules)
		if lerr != nil && !errors.Is(lerr, ErrNoLandlock) {
			started <- lerr
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- lerr
		done(cmd.Wait())
	}()
	return <-started
}

// restrictThread sets no_new_privs and a Landlock domain of rules on the
// calling thread.
func restrictThread(rules []Rule) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return fmt.Errorf("%w: %v", ErrNoLandlock, errno)
	}
	attr := landlockAttr{fs: fsV1}
	switch {
	case abi >= 5:
		attr.fs = fsV5
	case abi >= 3:
		attr.fs = fsV3
	case abi >= 2:
		attr.fs = fsV2
	}
	if abi >= 4 {
		attr.net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 6 {
		attr.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	size := unsafe.Sizeof(attr)
	if abi < 6 {
		size = unsafe.Offsetof(attr.scoped)
	}
	if abi < 4 {
		size = unsafe.Offsetof(attr.net)
	}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	defer unix.Close(int(fd))
	for _, r := range rules {
		if err := addRule(int(fd), r, attr.fs); err != nil {
			return err
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return nil
}

// landlockAttr is struct landlock_ruleset_attr up to ABI 6.
type landlockAttr struct {
	fs, net, scoped uint64
}

// addRule lets the ruleset reach r.Path's hierarchy as r.Access says
// (within what the kernel handles). A path that does not exist is left
// out; one that is not a directory gets only the rights of a file.
func addRule(ruleset int, r Rule, handled uint64) error {
	pfd, err := unix.Open(r.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("landlock rule %s: %w", r.Path, err)
	}
	defer unix.Close(pfd)
	access := r.Access & handled
	var st unix.Stat_t
	if unix.Fstat(pfd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
			unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	pb := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(pfd)}
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&pb)), 0, 0, 0); errno != 0 {
		return fmt.Errorf("landlock rule %s: %w", filepath.Clean(r.Path), errno)
	}
	return nil
}
