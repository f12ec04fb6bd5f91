package userns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/spec"
)

// IDMapper writes the uid and gid maps of a freshly started child, e.g. by
// running newuidmap and newgidmap. It is called once, while the child is
// still starting up.
type IDMapper interface {
	MapIDs(ctx context.Context, pid int) error
}

// Options are the inputs of Run besides the spec.
type Options struct {
	// Mapper writes the id maps. Nil means the spec holds single maps
	// that the Go runtime writes at clone time, without helpers.
	Mapper IDMapper
	// Stdin is the child's stdin (passed to the command only when the spec
	// is interactive and has no terminal). Stdout and Stderr are passed
	// through, or, with a terminal, receive the relayed pty output.
	Stdin, Stdout, Stderr *os.File
	Log                   *slog.Logger
	// SetupTimeout bounds the time from spawn to the command starting.
	SetupTimeout time.Duration
	// Start is the origin of the stage times logged under --debug
	// (default: when Run was called).
	Start time.Time
	// EncodedSpec, when set, is EncodeSpec of the spec, done ahead.
	EncodedSpec []byte
	// ServeRoot starts the daemon of a FUSE root (spec.OverlayFuse, or
	// OverlayAuto when the kernel refused): dev is the /dev/fuse
	// connection the init mounted, userns the sandbox's user namespace.
	// Both may be closed when it returns. Nil refuses FUSE roots.
	ServeRoot func(dev, userns *os.File) (RootDaemon, error)
	// ReturnAtExit lets Run return when the init reports the command's
	// end (by then it has killed and reaped everything else inside),
	// without waiting for the init to end and the kernel to tear down
	// the sandbox's namespaces. Only for a caller that does nothing
	// after the run that needs the sandbox's mounts gone; Run waits
	// anyway for a FUSE root's daemon and a terminal's relay.
	ReturnAtExit bool
	// Signals, when set, receives the signals to forward (Forwarded),
	// registered with signal.Notify by the caller, who may still be
	// registering them when Run starts and need not stop them: a process
	// that ends after the run saves the registration's cost (a round trip
	// to the runtime's signal thread per signal, each way). Nil: Run
	// registers its own once the init continues, and stops them when it
	// returns.
	Signals chan os.Signal
}

// RootDaemon is the process serving a FUSE root from outside the sandbox.
type RootDaemon interface {
	// Wait waits, at most timeout, for it to exit once the sandbox is
	// gone, and says how it ended (nil: cleanly).
	Wait(timeout time.Duration) error
}

// RootDaemonError is the FUSE root's daemon failing: the cause of
// whatever the init then reported.
type RootDaemonError struct{ Err error }

func (e *RootDaemonError) Error() string { return "root file system: " + e.Err.Error() }
func (e *RootDaemonError) Unwrap() error { return e.Err }

// rootDaemonWait bounds the wait for a FUSE daemon after its sandbox.
const rootDaemonWait = 10 * time.Second

// Result is how the command ended.
type Result struct {
	ExitCode int
	Signal   syscall.Signal // non-zero when the command was killed
}

// SpawnError is a failure to create the namespaces (clone or the first
// exec), typically because user namespaces are not allowed.
type SpawnError struct{ Err error }

func (e *SpawnError) Error() string { return "spawn sandbox: " + e.Err.Error() }
func (e *SpawnError) Unwrap() error { return e.Err }

// MapError is a failure of the IDMapper.
type MapError struct{ Err error }

func (e *MapError) Error() string { return "map ids: " + e.Err.Error() }
func (e *MapError) Unwrap() error { return e.Err }

// ProtocolError is an unexpected message or a child that died during set-up.
type ProtocolError struct{ Detail string }

func (e *ProtocolError) Error() string { return "sandbox init: " + e.Detail }

// Namespaces created for every sandbox.
const cloneFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
	unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Forwarded are the signals the CLI passes on to the command.
var Forwarded = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT, unix.SIGWINCH,
}

// Run starts the sandbox described by s, waits for its command and returns
// how it ended. Errors before the command started are *SpawnError,
// *MapError, *ChildError or *ProtocolError.
func Run(ctx context.Context, s *spec.Spec, o Options) (Result, error) {
	sp, err := Spawn(ctx, SpawnConfigFor(s, o.Mapper), s, o)
	if err != nil {
		return Result{}, err
	}
	return sp.Run(ctx, s, o)
}

// SpawnConfig is what has to be fixed when the sandbox is cloned, before
// its spec is known: the capabilities the set-up runs with and how the id
// maps are written.
type SpawnConfig struct {
	// Caps are raised as ambient capabilities across the exec (SetupCaps).
	Caps []uintptr
	// Mapper writes the maps; when nil, UIDs and GIDs are single maps the
	// Go runtime writes at clone time.
	Mapper     IDMapper
	UIDs, GIDs []specs.LinuxIDMapping
	// Prewarm has the init prepare for decoding its spec while it waits,
	// for inits spawned ahead of time whose spec comes later.
	Prewarm bool
}

// SpawnConfigFor is the spawn configuration that runs s.
func SpawnConfigFor(s *spec.Spec, m IDMapper) SpawnConfig {
	c := SpawnConfig{Caps: SetupCaps(s), Mapper: m}
	if m == nil {
		c.UIDs, c.GIDs = s.OCI.Linux.UIDMappings, s.OCI.Linux.GIDMappings
	}
	return c
}

// Spawned is a sandbox's init, cloned into its namespaces with its id maps
// written, waiting for its spec and the continue message.
type Spawned struct {
	pid   int
	sync  conn
	specW *os.File
	// pidfd refers to the init; -1 until Pidfd or Adopt sets it.
	pidfd int
	// waitc delivers the init's wait status; nil when the init was adopted
	// from the process that spawned it, which keeps reaping it.
	waitc   <-chan syscall.WaitStatus
	adopted bool
	// specSent is set when the spec was written during Spawn.
	specSent bool
}

// Spawn clones the init into new namespaces and writes its id maps. When s
// is not nil its spec is written while the maps are, which takes it off
// the critical path. Errors are *SpawnError or *MapError.
func Spawn(ctx context.Context, c SpawnConfig, s *spec.Spec, o Options) (*Spawned, error) {
	stage := o.stageLogger()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	parentEnd, err := pollableConn(fds[0], "sync-parent")
	if err != nil {
		unix.Close(fds[1])
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	childEnd := os.NewFile(uintptr(fds[1]), "sync-child")
	defer childEnd.Close()

	var specPipe [2]int
	if err := unix.Pipe2(specPipe[:], unix.O_CLOEXEC); err != nil {
		parentEnd.f.Close()
		return nil, fmt.Errorf("spec pipe: %w", err)
	}
	specR, specW := os.NewFile(uintptr(specPipe[0]), "spec-r"), os.NewFile(uintptr(specPipe[1]), "spec-w")
	defer specR.Close()

	sys := &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		// The child dies with the thread that spawned it; that thread
		// stays locked and alive until the child is reaped.
		Pdeathsig: unix.SIGKILL,
		Setsid:    true,
		// The set-up needs capabilities in the new user namespace after
		// exec, while our uid inside is still unmapped or not 0, so they
		// are carried through exec as ambient capabilities.
		AmbientCaps: c.Caps,
	}
	if c.Mapper == nil {
		sys.UidMappings = toSyscallMaps(c.UIDs)
		sys.GidMappings = toSyscallMaps(c.GIDs)
		sys.GidMappingsEnableSetgroups = false
	}
	stdin, stdout, stderr := o.Stdin, o.Stdout, o.Stderr
	if stdin == nil || stdout == nil || stderr == nil {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			parentEnd.f.Close()
			specW.Close()
			return nil, err
		}
		defer null.Close()
		stdin, stdout, stderr = orFile(stdin, null), orFile(stdout, null), orFile(stderr, null)
	}
	attr := &syscall.ProcAttr{
		Files: []uintptr{stdin.Fd(), stdout.Fd(), stderr.Fd(), childEnd.Fd(), specR.Fd()},
		Env:   []string{},
		Sys:   sys,
	}
	argv := []string{"sandbox", InitCommand, "--sync-fd=3", "--spec-fd=4"}
	if c.Prewarm {
		argv = append(argv, "--prewarm")
	}

	pid, waitc, err := StartLocked("/proc/self/exe", argv, attr)
	if err != nil {
		parentEnd.f.Close()
		specW.Close()
		return nil, &SpawnError{Err: unwrapPathError(err)}
	}
	sp := &Spawned{pid: pid, sync: parentEnd, specW: specW, pidfd: -1, waitc: waitc}
	stage("spawned", time.Now())

	if s != nil {
		// The spec goes down the pipe while the child starts and the id
		// maps are written. The child reads until EOF; a child that dies
		// early makes the write fail, which its wait status then explains.
		sp.specSent = true
		go sp.writeSpec(s, o.EncodedSpec)
	}
	if c.Mapper != nil {
		if err := c.Mapper.MapIDs(ctx, sp.pid); err != nil {
			sp.Kill()
			return nil, &MapError{Err: err}
		}
		stage("idmapped", time.Now())
	}
	return sp, nil
}

// stageLogger logs a stage's time since o.Start (or now) under --debug.
func (o Options) stageLogger() func(name string, at time.Time) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t0 := o.Start
	if t0.IsZero() {
		t0 = time.Now()
	}
	return func(name string, at time.Time) {
		log.Debug("stage", "stage", name, "ms", fmt.Sprintf("%.2f", float64(at.Sub(t0).Microseconds())/1000))
	}
}

func orFile(f, fallback *os.File) *os.File {
	if f == nil {
		return fallback
	}
	return f
}

func (sp *Spawned) writeSpec(s *spec.Spec, encoded []byte) {
	if encoded == nil {
		encoded = EncodeSpec(s)
	}
	sp.specW.Write(encoded)
	sp.specW.Close()
}

// Speculate writes a speculative spec (Speculation) ahead of the run's
// own, for an init spawned without one: it builds that root while it
// waits. Preconditions: the id maps are written, the spec not yet sent.
func (sp *Spawned) Speculate(b []byte) error {
	if sp.specSent {
		return errors.New("speculate: the spec was already sent")
	}
	_, err := sp.specW.Write(b)
	return err
}

// Kill ends the init and releases what refers to it.
func (sp *Spawned) Kill() {
	if sp.pidfd >= 0 {
		unix.PidfdSendSignal(sp.pidfd, unix.SIGKILL, nil, 0)
	} else if sp.pid > 0 {
		unix.Kill(sp.pid, unix.SIGKILL)
	}
	if sp.waitc != nil {
		<-sp.waitc
	}
	sp.release()
}

func (sp *Spawned) release() {
	sp.sync.f.Close()
	sp.specW.Close()
	if sp.pidfd >= 0 {
		unix.Close(sp.pidfd)
		sp.pidfd = -1
	}
}

// HandOff returns what another process needs to Adopt the init: the sync
// socket, the spec pipe and a pidfd, in that order, and lets go of them
// here. The caller sends them on and closes them. The init stays this
// process's child: its parent-death signal is tied to the thread that
// spawned it until the adopter's continue clears it, and this process
// keeps reaping it.
func (sp *Spawned) HandOff() ([]*os.File, error) {
	if sp.specSent {
		return nil, errors.New("hand off: the spec was already sent")
	}
	fd, err := unix.PidfdOpen(sp.pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	files := []*os.File{sp.sync.f, sp.specW, os.NewFile(uintptr(fd), "init-pidfd")}
	sp.sync.f, sp.specW = nil, nil
	return files, nil
}

// Adopt takes over an init another process spawned and handed off: its
// sync socket, spec pipe and pidfd.
func Adopt(sync, specW, pidfd *os.File) (*Spawned, error) {
	fd, err := unix.FcntlInt(pidfd.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	pidfd.Close()
	var sf *os.File
	if err == nil {
		sf, err = pollableDup(sync.Fd(), "sync")
	}
	sync.Close()
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		specW.Close()
		return nil, fmt.Errorf("adopt: %w", err)
	}
	return &Spawned{sync: conn{f: sf, nonblock: true}, specW: specW, pidfd: fd, adopted: true}, nil
}

// Run sends the spec (unless Spawn did) and the continue message, then
// relays signals and the terminal until the command ends.
func (sp *Spawned) Run(ctx context.Context, s *spec.Spec, o Options) (Result, error) {
	stage := o.stageLogger()
	defer sp.release()
	if !sp.specSent {
		sp.specSent = true
		go sp.writeSpec(s, o.EncodedSpec)
	}
	kill := sp.Kill
	cont := message{Kind: msgContinue}
	var stdio []int
	if sp.adopted {
		// The init was cloned elsewhere: it gets our standard streams
		// now, and from here on its life is tied to this socket instead
		// of its parent's thread.
		cont.Adopted = true
		in, out, errf := o.Stdin, o.Stdout, o.Stderr
		if in == nil || out == nil || errf == nil {
			return Result{}, &ProtocolError{Detail: "an adopted sandbox needs stdin, stdout and stderr"}
		}
		stdio = []int{int(in.Fd()), int(out.Fd()), int(errf.Fd())}
	}
	if err := sp.sync.send(cont, stdio...); err != nil {
		kill()
		return Result{}, &ProtocolError{Detail: "send continue: " + err.Error()}
	}
	// Unless the caller registered them, after continue, so it is off the
	// child's critical path. A signal that arrives before is handled by
	// the default action, which ends the CLI and, through the
	// parent-death signal or the closed socket, the sandbox.
	sigch := o.Signals
	if sigch == nil {
		sigch = make(chan os.Signal, 16)
		signal.Notify(sigch, Forwarded...)
		defer signal.Stop(sigch)
	}

	msgs := make(chan received, 4)
	go readMessages(sp.sync, msgs)

	timeout := o.SetupTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	setup := time.NewTimer(timeout)
	defer setup.Stop()

	var (
		ready    bool
		cmdFd    = -1 // pidfd of the command, from ready
		exitMsg  *message
		tty      *relay
		childErr error
		pending  []os.Signal
		daemon   RootDaemon
	)
	defer func() {
		if tty != nil {
			tty.stop()
		}
		if daemon != nil {
			// Every return has the init gone or killed: the sandbox's
			// mount namespace goes with it, and the daemon exits.
			daemon.Wait(rootDaemonWait)
		}
	}()
	// ended turns how the init ended into the result; ws is nil when the
	// init is not our child and only its socket tells that it is gone.
	ended := func(ws *syscall.WaitStatus) (Result, error) {
		if tty != nil {
			tty.finish()
		}
		stage("exited", time.Now())
		if daemon != nil {
			// Before anything is reported or removed: the daemon may
			// still be answering what was in flight when the sandbox
			// ended, and its failure explains the init's.
			err := daemon.Wait(rootDaemonWait)
			daemon = nil
			stage("root-daemon-exited", time.Now())
			if err != nil && (childErr != nil || !ready) {
				return Result{}, &RootDaemonError{Err: err}
			}
		}
		if childErr != nil {
			return Result{}, childErr
		}
		if exitMsg != nil {
			if exitMsg.Signal != 0 {
				return Result{ExitCode: 128 + exitMsg.Signal, Signal: syscall.Signal(exitMsg.Signal)}, nil
			}
			return Result{ExitCode: exitMsg.Status}, nil
		}
		if ws == nil {
			if !ready {
				return Result{}, &ProtocolError{Detail: "the sandbox's init exited during set-up"}
			}
			return Result{}, &ProtocolError{Detail: "the sandbox's init ended without reporting how the command ended"}
		}
		if !ready {
			return Result{}, &ProtocolError{Detail: "the sandbox's init exited during set-up (" + describeStatus(*ws) + ")"}
		}
		if ws.Signaled() {
			return Result{ExitCode: 128 + int(ws.Signal()), Signal: ws.Signal()}, nil
		}
		return Result{ExitCode: ws.ExitStatus()}, nil
	}
	// drain takes what the init sent before it ended; msgs is nil when
	// the reader already saw the end of the socket.
	// readyTimes logs the child's stage times that came with ready.
	readyTimes := func(m message) {
		for _, t := range m.Times {
			stage("child-"+t.Stage, time.Unix(0, t.Nanos))
		}
		stage("ready", time.Now())
	}
	drain := func() {
		for r := range orClosed(msgs) {
			switch {
			case r.err != nil:
			case r.m.Kind == msgExit:
				m := r.m
				exitMsg = &m
			case r.m.Kind == msgFailed:
				childErr = r.m.childError()
			case r.m.Kind == msgReady && !ready:
				// The end was seen first (select picks at random).
				ready = true
				readyTimes(r.m)
			}
			closeAll(r.fds)
		}
	}
	var gone chan struct{}
	if sp.adopted {
		gone = make(chan struct{})
		go waitPidfd(sp.pidfd, gone)
	}
	for {
		select {
		case r, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			if r.err != nil {
				continue // EOF or a broken socket: the wait status decides
			}
			switch r.m.Kind {
			case msgHello:
				stage("hello", time.Now())
			case msgFuse:
				// Only during set-up, once, and only when asked for.
				if len(r.fds) != 2 || o.ServeRoot == nil || daemon != nil || ready {
					closeAll(r.fds)
					kill()
					return Result{}, &ProtocolError{Detail: "unexpected FUSE root"}
				}
				dev, ns := os.NewFile(uintptr(r.fds[0]), "fuse"), os.NewFile(uintptr(r.fds[1]), "userns")
				d, err := o.ServeRoot(dev, ns)
				dev.Close()
				ns.Close()
				if err != nil {
					kill()
					return Result{}, &RootDaemonError{Err: err}
				}
				daemon = d
				stage("root-daemon", time.Now())
			case msgPty:
				if len(r.fds) != 1 {
					closeAll(r.fds)
					kill()
					return Result{}, &ProtocolError{Detail: "pty message without a terminal fd"}
				}
				tty = startRelay(os.NewFile(uintptr(r.fds[0]), "pty"), o.Stdin, o.Stdout, s.Interactive)
			case msgReady:
				if len(r.fds) != 1 {
					closeAll(r.fds)
					kill()
					return Result{}, &ProtocolError{Detail: "ready message without the command's pidfd"}
				}
				cmdFd = r.fds[0]
				defer unix.Close(cmdFd)
				ready = true
				setup.Stop()
				readyTimes(r.m)
				for _, sig := range pending {
					unix.PidfdSendSignal(cmdFd, sig.(syscall.Signal), nil, 0)
				}
				pending = nil
			case msgFailed:
				childErr = r.m.childError()
			case msgExit:
				m := r.m
				exitMsg = &m
				if o.ReturnAtExit && daemon == nil && tty == nil && ready {
					return ended(nil)
				}
			}
		case sig := <-sigch:
			if sig == unix.SIGWINCH {
				if tty != nil {
					tty.resize()
				}
				continue
			}
			if ready {
				// ESRCH once the command is gone: nothing to forward to.
				unix.PidfdSendSignal(cmdFd, sig.(syscall.Signal), nil, 0)
			} else {
				pending = append(pending, sig)
			}
		case <-setup.C:
			kill()
			return Result{}, &ProtocolError{Detail: fmt.Sprintf("the sandbox did not start within %s", timeout)}
		case <-ctx.Done():
			kill()
			return Result{}, ctx.Err()
		case <-gone:
			// Adopted: the init is not our child, its pidfd tells that it
			// is gone, and only after the kernel emptied its PID
			// namespace. What it sent is all in the socket by then.
			drain()
			return ended(nil)
		case ws := <-sp.waitc:
			// Drain what the child sent before it exited; msgs is nil
			// when the reader already saw the end of the socket.
			drain()
			return ended(&ws)
		}
	}
}

// waitPidfd closes gone when the process behind pidfd has exited. It
// waits in the runtime's poller, holding no thread; only if the pidfd
// cannot go there, in a blocking poll.
func waitPidfd(pidfd int, gone chan<- struct{}) {
	defer close(gone)
	if f, err := pollableDup(uintptr(pidfd), "init-pidfd"); err == nil {
		defer f.Close()
		rc, err := f.SyscallConn()
		if err == nil && rc.Read(func(fd uintptr) bool { return readable(int(fd), 0) }) == nil {
			return
		}
	}
	readable(pidfd, -1)
}

// readable polls fd for input for at most ms milliseconds (-1: no bound).
func readable(fd, ms int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, ms)
		if err != unix.EINTR {
			return n > 0
		}
	}
}

// orClosed returns c, or a closed channel when c is nil.
func orClosed(c chan received) chan received {
	if c == nil {
		c = make(chan received)
		close(c)
	}
	return c
}

// SetupCaps are the child's capabilities: CAP_SYS_ADMIN for the mounts,
// CAP_SETPCAP to shrink the bounding set, and whatever the command is
// granted, which it must hold to pass on.
func SetupCaps(s *spec.Spec) []uintptr {
	caps := []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP}
	if s.Rootfs != nil {
		// overlayfs checks its work directory with the mounter's
		// credentials and needs CAP_DAC_OVERRIDE for it (EACCES without).
		caps = append(caps, unix.CAP_DAC_OVERRIDE)
	}
	// A command that runs as other ids than ours inside (-u) is switched
	// to them when it is started.
	if u := s.OCI.Process.User; s.OCI.Linux != nil {
		if uid, ok := insideID(uint32(os.Getuid()), s.OCI.Linux.UIDMappings); !ok || uid != u.UID {
			caps = append(caps, unix.CAP_SETUID)
		}
		if gid, ok := insideID(uint32(os.Getgid()), s.OCI.Linux.GIDMappings); !ok || gid != u.GID || len(u.AdditionalGids) > 0 {
			caps = append(caps, unix.CAP_SETGID)
		}
	}
	if c := s.OCI.Process.Capabilities; c != nil {
		for _, name := range c.Ambient {
			if n, ok := spec.CapNumber(name); ok && !slices.Contains(caps, uintptr(n)) {
				caps = append(caps, uintptr(n))
			}
		}
	}
	return caps
}

// insideID is what host id id is inside a user namespace with maps ms.
func insideID(id uint32, ms []specs.LinuxIDMapping) (uint32, bool) {
	for _, m := range ms {
		if id >= m.HostID && uint64(id) < uint64(m.HostID)+uint64(m.Size) {
			return m.ContainerID + (id - m.HostID), true
		}
	}
	return 0, false
}

type received struct {
	m   message
	fds []int
	err error
}

func readMessages(c conn, out chan<- received) {
	defer close(out)
	buf := make([]byte, maxMessage)
	for {
		m, fds, err := c.recv(buf)
		out <- received{m: m, fds: fds, err: err}
		if err != nil {
			return
		}
	}
}

func describeStatus(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
