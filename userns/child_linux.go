package userns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/seccomp"
	"sandbox/spec"
)

// InitCommand is the hidden first argument that selects the child stage.
const InitCommand = "__init"

// InitMain is the child stage: it runs as PID 1 of the new namespaces,
// builds the root, starts the command and stays to reap and forward
// signals. It returns the exit code for os.Exit. Everything the parent needs
// to know travels over the sync socket; stderr is used only when there is
// no socket to report on.
func InitMain(args []string) int {
	// Credentials (ambient capabilities, no_new_privs) are per thread; the
	// command is forked from this thread, so all set-up stays on it.
	runtime.LockOSThread()
	start := time.Now()

	syncFD, specFD, prewarm, err := parseInitArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %s is internal and not for direct use: %v\n", InitCommand, err)
		return 125
	}
	// Nothing we inherited may reach the command: every fd above 2 is
	// close-on-exec from here on, including any the caller leaked to us.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: init: close_range: %v\n", err)
		return 125
	}
	c := conn{f: os.NewFile(uintptr(syncFD), "sync")}
	if err := c.send(message{Kind: msgHello}); err != nil {
		return 125
	}
	if prewarm {
		prewarmDecoder()
	}
	// The parent writes the spec into the pipe after spawning us, while
	// the id maps are being written; reading it overlaps that wait. A
	// pre-spawner may first write a speculative spec, the root of which
	// is built while the run's own spec is awaited.
	specFile := os.NewFile(uintptr(specFD), "spec")
	s, err := decodeNextSpec(specFile)
	var pre *prebuilt
	if err == nil && s.Speculative {
		pre = speculate(s)
		if s, err = decodeNextSpec(specFile); err == nil && s.Speculative {
			err = errors.New("decode spec: a second speculative spec")
		}
	}
	specFile.Close()
	if err != nil {
		c.send(failure(StageStart, "read spec", "", err))
		return 125
	}
	decoded := time.Now()
	ch := &child{conn: c, spec: s, pre: pre}
	ch.mark(StageStart, start)
	ch.mark("decoded", decoded)
	m, fds, err := c.recv(make([]byte, maxMessage))
	ch.mark("continued", time.Now())
	if err != nil || m.Kind != msgContinue {
		// The parent went away or failed to map ids; it reports that.
		closeAll(fds)
		return 125
	}
	if m.Adopted {
		if err := adopted(c, fds); err != nil {
			c.send(failure(StageStart, "adopt", "", err))
			return 125
		}
	} else {
		closeAll(fds)
	}
	return ch.run()
}

// adopted switches an init that a pre-spawner cloned over to the process
// that took it: that process's stdin, stdout and stderr (attached to
// continue) become ours, and our life is tied to its end of the sync
// socket instead of to the pre-spawner's thread, which may end first.
func adopted(c conn, stdio []int) error {
	if len(stdio) != 3 {
		closeAll(stdio)
		return fmt.Errorf("continue carried %d fds, want 3", len(stdio))
	}
	for i, fd := range stdio {
		if err := unix.Dup3(fd, i, 0); err != nil {
			closeAll(stdio)
			return err
		}
	}
	closeAll(stdio)
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0); err != nil {
		return err
	}
	// Nothing more comes from the adopter after continue; its end of the
	// socket closing means it died, and so does the sandbox: PID 1
	// exiting makes the kernel kill every process in the namespace.
	go func() {
		buf := make([]byte, maxMessage)
		for {
			if _, fds, err := c.recv(buf); err != nil {
				os.Exit(137)
			} else {
				closeAll(fds)
			}
		}
	}()
	return nil
}

func parseInitArgs(args []string) (syncFD, specFD int, prewarm bool, err error) {
	syncFD, specFD = -1, -1
	for _, a := range args {
		if a == "--prewarm" {
			prewarm = true
			continue
		}
		name, val, ok := strings.Cut(a, "=")
		if !ok {
			return 0, 0, false, fmt.Errorf("unexpected argument %q", a)
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 3 {
			return 0, 0, false, fmt.Errorf("bad fd in %q", a)
		}
		switch name {
		case "--sync-fd":
			syncFD = n
		case "--spec-fd":
			specFD = n
		default:
			return 0, 0, false, fmt.Errorf("unknown argument %q", a)
		}
	}
	if syncFD < 0 || specFD < 0 {
		return 0, 0, false, errors.New("--sync-fd and --spec-fd are required")
	}
	return syncFD, specFD, prewarm, nil
}

// child is the state of the child stage.
type child struct {
	conn  conn
	spec  *childSpec
	pre   *prebuilt // a root built ahead, or nil
	times []StageTime
}

func (ch *child) mark(stage string, t time.Time) {
	if ch.spec.Debug {
		ch.times = append(ch.times, StageTime{Stage: stage, Nanos: t.UnixNano()})
	}
}

func (ch *child) fail(stage string, err error) int {
	var (
		se *stepError
		m  message
	)
	if errors.As(err, &se) {
		m = failure(stage, se.op, se.path, se.err)
	} else {
		m = failure(stage, "", "", err)
	}
	var ke *kernelOverlayError
	m.KernelOverlay = errors.As(err, &ke)
	ch.conn.send(m)
	return 125
}

func (ch *child) run() int {
	s := ch.spec
	// From here on our memory and /proc/1 are closed to the sandbox: a
	// non-dumpable process's /proc files belong to root and it cannot be
	// ptraced, so the command cannot reach our executable through
	// /proc/1/exe (CVE-2019-5736). Not earlier: newuidmap checks that
	// /proc/PID belongs to the caller.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return ch.fail(StageStart, step("prctl", "PR_SET_DUMPABLE", err))
	}
	rootfd := -1
	if ch.pre != nil {
		if rootfd = ch.pre.take(s); rootfd >= 0 {
			ch.mark("prebuilt", time.Now())
		}
		ch.pre = nil
	}
	if rootfd < 0 {
		var err error
		rootfd, err = buildRoot(s, func(dev, userns int) error {
			return ch.conn.send(message{Kind: msgFuse}, dev, userns)
		})
		if err != nil {
			return ch.fail(StageMounts, err)
		}
	}
	ch.mark(StageMounts, time.Now())
	if s.OCI.Hostname != "" {
		if err := unix.Sethostname([]byte(s.OCI.Hostname)); err != nil {
			return ch.fail(StageMounts, step("sethostname", s.OCI.Hostname, err))
		}
	}
	err := pivot(rootfd, s.Rootfs == nil)
	unix.Close(rootfd)
	if err != nil {
		return ch.fail(StagePivot, err)
	}
	if err := enterWorkdir(s.OCI.Process.Cwd); err != nil {
		return ch.fail(StagePivot, err)
	}
	ch.mark(StagePivot, time.Now())

	stdio, err := ch.stdio()
	if err != nil {
		return ch.fail(StageExec, err)
	}
	argv0, err := lookPath(s.OCI.Process.Args[0], s.OCI.Process.Env)
	if err != nil {
		return ch.fail(StageExec, err)
	}
	// A command granted CAP_SYS_PTRACE may attach to PID 1 despite it
	// being non-dumpable; then every thread of PID 1 gets the command's
	// filter before the command exists, and drops its capabilities right
	// after. Without CAP_SYS_PTRACE nothing inside can reach PID 1.
	ptrace := grants(s.OCI.Process, "CAP_SYS_PTRACE")
	if ptrace {
		if err := confineInit(s.Seccomp, false); err != nil {
			return ch.fail(StageLock, confineError(err))
		}
	}
	pid, err := startCommand(s, argv0, stdio)
	if err != nil {
		var se *stepError
		if errors.As(err, &se) && se.op != "exec" {
			return ch.fail(StageLock, err)
		}
		return ch.fail(StageExec, err)
	}
	for _, fd := range stdio {
		if fd > 2 {
			unix.Close(int(fd))
		}
	}
	ch.mark(StageExec, time.Now())
	// The parent signals the command itself through this pidfd (valid
	// across PID namespaces, immune to pid reuse), so PID 1 needs no
	// signal handlers: a Go program installs them with one thread
	// round-trip per signal, milliseconds on the start-up path.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return ch.fail(StageExec, step("pidfd_open", s.OCI.Process.Args[0], err))
	}
	err = ch.conn.send(message{Kind: msgReady, Pid: pid, Times: ch.times}, pidfd)
	unix.Close(pidfd)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 125
	}
	if ptrace {
		if err := confineInit(nil, true); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			return ch.fail(StageLock, confineError(err))
		}
	}
	return ch.reap(pid)
}

// stdio returns the command's fds 0-2. With a terminal it creates a pty
// in the sandbox's own devpts and hands the master to the parent.
func (ch *child) stdio() ([]uintptr, error) {
	p := ch.spec.OCI.Process
	if p.Terminal {
		master, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, step("open", "/dev/pts/ptmx", err)
		}
		defer unix.Close(master)
		if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
			return nil, step("unlock pty", "/dev/pts/ptmx", err)
		}
		if p.ConsoleSize != nil {
			ws := &unix.Winsize{Row: uint16(p.ConsoleSize.Height), Col: uint16(p.ConsoleSize.Width)}
			if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, ws); err != nil {
				return nil, step("set window size", "/dev/pts/ptmx", err)
			}
		}
		// TIOCGPTPEER opens the peer without a path lookup (Linux 4.13).
		slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
		if errno != 0 {
			return nil, step("open pty peer", "/dev/pts", errno)
		}
		if err := ch.conn.send(message{Kind: msgPty}, master); err != nil {
			unix.Close(int(slave))
			return nil, step("send pty", "", err)
		}
		return []uintptr{slave, slave, slave}, nil
	}
	in := uintptr(0)
	if !ch.spec.Interactive {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, step("open", "/dev/null", err)
		}
		in = uintptr(fd)
	}
	return []uintptr{in, 1, 2}, nil
}

// startCommand locks the calling thread down to what the command may have
// and forks the command from it. Capabilities, no_new_privs and the
// seccomp filter are per thread and a fork inherits its thread's, so this
// is PID 1's own locked main thread: after it, PID 1 runs with the
// command's filter and no set-up capabilities.
// Preconditions: on the locked main thread, set-up done.
func startCommand(s *childSpec, argv0 string, stdio []uintptr) (int, error) {
	// The command gets the caller's timer slack, not the init's coarse
	// one (the fork copies this thread's); this thread only waits after.
	slack := s.TimerSlack
	if slack == 0 {
		slack = defaultTimerSlack
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0); err != nil {
		return 0, step("prctl PR_SET_TIMERSLACK", "", err)
	}
	if err := lockDown(s.OCI.Process, s.Seccomp); err != nil {
		return 0, err
	}
	sys := &syscall.SysProcAttr{
		// A new session: without -t the command has no controlling
		// terminal, so TIOCSTI cannot push input into the caller's.
		Setsid:  true,
		Setctty: s.OCI.Process.Terminal,
		Ctty:    0,
	}
	if u := s.OCI.Process.User; int(u.UID) != unix.Getuid() || int(u.GID) != unix.Getgid() || len(u.AdditionalGids) > 0 {
		// -u: the command is switched to its ids between fork and exec.
		// The granted capabilities survive the switch as ambient ones
		// (the runtime keeps them across setuid and raises them again).
		sys.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.AdditionalGids, NoSetGroups: !setgroupsAllowed()}
		if c := s.OCI.Process.Capabilities; c != nil {
			for _, name := range c.Ambient {
				if n, ok := spec.CapNumber(name); ok {
					sys.AmbientCaps = append(sys.AmbientCaps, uintptr(n))
				}
			}
		}
	}
	pid, err := syscall.ForkExec(argv0, s.OCI.Process.Args, &syscall.ProcAttr{
		Env:   s.OCI.Process.Env,
		Files: stdio,
		Sys:   sys,
	})
	if err != nil {
		return 0, step("exec", s.OCI.Process.Args[0], err)
	}
	// This thread needs no capability from here on (it waits and writes
	// to the sync socket); the set-up ones go.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	unix.Capset(&hdr, &none[0])
	return pid, nil
}

// setgroupsAllowed tells whether this user namespace lets setgroups(2)
// through: not with a single-id map, whose gid map was written with
// setgroups denied.
func setgroupsAllowed() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "allow"
}

// lockDown sets the calling thread's credentials to the command's: the
// bounding set, the ambient set the command keeps after exec,
// no_new_privs, and the seccomp filter last.
// Preconditions: on the locked thread that will fork the command, which
// holds CAP_SYS_ADMIN and CAP_SETPCAP (ambient since clone) and every
// capability to be granted.
func lockDown(p *specs.Process, filter []byte) error {
	var bounding, granted []string
	if p.Capabilities != nil {
		bounding, granted = p.Capabilities.Bounding, p.Capabilities.Ambient
	}
	keep := map[int]bool{}
	for _, c := range bounding {
		n, _ := spec.CapNumber(c)
		keep[n] = true
	}
	for c := 0; c < 64; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL {
				break // past the kernel's last capability
			}
			return step("drop from bounding set", fmt.Sprintf("capability %d", c), err)
		}
	}
	// Ambient capabilities were raised at clone time for the set-up; the
	// command keeps only the ones granted to it.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return step("prctl", "PR_CAP_AMBIENT_CLEAR_ALL", err)
	}
	// The inheritable set is exactly what is granted: the clone-time
	// ambient capabilities put CAP_SYS_ADMIN and CAP_SETPCAP there.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return step("capget", "", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	for _, c := range granted {
		n, _ := spec.CapNumber(c)
		data[n/32].Inheritable |= 1 << (uint(n) % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return step("capset", "inheritable", err)
	}
	if len(granted) > 0 {
		for _, c := range granted {
			n, _ := spec.CapNumber(c)
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0); err != nil {
				return step("raise ambient", c, err)
			}
		}
	}
	// Uid 0 inside gains nothing at exec for being 0: the command's
	// capabilities are the granted ones, carried as ambient. Without this
	// a root command would keep what this thread holds for the set-up,
	// intersected with the bounding set (no_new_privs keeps exec from
	// adding more).
	const noRoot = 1<<0 | 1<<1 // SECBIT_NOROOT, SECBIT_NOROOT_LOCKED
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, noRoot, 0, 0, 0); err != nil {
		return step("prctl", "PR_SET_SECUREBITS", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return step("prctl", "PR_SET_NO_NEW_PRIVS", err)
	}
	if len(filter) > 0 {
		prog, err := seccomp.Decode(filter)
		if err != nil {
			return step("seccomp", "decode", err)
		}
		if err := seccomp.Install(prog); err != nil {
			return step("seccomp", "install", err)
		}
	}
	return nil
}

// lookPath finds name on the PATH of env, inside the new root, the way
// execvp does: a name with a slash is used as is; otherwise the first
// executable match wins, and a match without permission is remembered so
// the error says "permission denied" rather than "not found".
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", step("exec", name, err)
		}
		return name, nil
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	var denied error
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if denied == nil && err != unix.ENOENT && err != unix.ENOTDIR {
			denied = step("exec", p, err)
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", step("exec", name, unix.ENOENT)
}

func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EACCES
	}
	return unix.Access(p, unix.X_OK)
}

// confineInit applies to every thread of PID 1 at once: the filter (and
// no_new_privs, which it requires) when filter is set, and the loss of all
// capabilities when dropCaps is.
// Preconditions: a cgo-free binary (syscall.AllThreadsSyscall).
func confineInit(filter []byte, dropCaps bool) error {
	if len(filter) > 0 {
		if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); errno != 0 {
			return fmt.Errorf("no_new_privs: %w", errno)
		}
		prog, err := seccomp.Decode(filter)
		if err != nil {
			return err
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
			return fmt.Errorf("seccomp: %w", errno)
		}
	}
	if dropCaps {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
			return fmt.Errorf("drop capabilities: %w", errno)
		}
	}
	return nil
}

// confineError names the step for the parent's explanation.
func confineError(err error) error { return step("confine init", "", err) }

func grants(p *specs.Process, capability string) bool {
	if p.Capabilities == nil {
		return false
	}
	for _, c := range p.Capabilities.Ambient {
		if c == capability {
			return true
		}
	}
	return false
}
