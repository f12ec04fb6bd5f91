package userns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
}

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

// forwarded are the signals the CLI passes on to the command.
var forwarded = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT, unix.SIGWINCH,
}

// Run starts the sandbox described by s, waits for its command and returns
// how it ended. Errors before the command started are *SpawnError,
// *MapError, *ChildError or *ProtocolError.
func Run(ctx context.Context, s *spec.Spec, o Options) (Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t0 := o.Start
	if t0.IsZero() {
		t0 = time.Now()
	}
	stage := func(name string, at time.Time) {
		log.Debug("stage", "stage", name, "ms", fmt.Sprintf("%.2f", float64(at.Sub(t0).Microseconds())/1000))
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Result{}, fmt.Errorf("sync socket: %w", err)
	}
	parentEnd := conn{os.NewFile(uintptr(fds[0]), "sync-parent")}
	childEnd := os.NewFile(uintptr(fds[1]), "sync-child")
	defer parentEnd.f.Close()
	defer childEnd.Close()

	var specPipe [2]int
	if err := unix.Pipe2(specPipe[:], unix.O_CLOEXEC); err != nil {
		return Result{}, fmt.Errorf("spec pipe: %w", err)
	}
	specR, specW := os.NewFile(uintptr(specPipe[0]), "spec-r"), os.NewFile(uintptr(specPipe[1]), "spec-w")
	defer specR.Close()
	defer specW.Close()

	sys := &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		// The child dies with the thread that spawned it; that thread
		// stays locked and alive until the child is reaped.
		Pdeathsig: unix.SIGKILL,
		Setsid:    true,
		// The set-up needs capabilities in the new user namespace after
		// exec, while our uid inside is still unmapped or not 0, so they
		// are carried through exec as ambient capabilities.
		AmbientCaps: setupCaps(s),
	}
	if o.Mapper == nil {
		sys.UidMappings = toSyscallMaps(s.OCI.Linux.UIDMappings)
		sys.GidMappings = toSyscallMaps(s.OCI.Linux.GIDMappings)
		sys.GidMappingsEnableSetgroups = false
	}
	attr := &syscall.ProcAttr{
		Files: []uintptr{o.Stdin.Fd(), o.Stdout.Fd(), o.Stderr.Fd(), childEnd.Fd(), specR.Fd()},
		Env:   []string{},
		Sys:   sys,
	}
	argv := []string{"sandbox", InitCommand, "--sync-fd=3", "--spec-fd=4"}

	type started struct {
		pid int
		err error
	}
	startc := make(chan started, 1)
	waitc := make(chan syscall.WaitStatus, 1)
	go func() {
		// Parent-death signals are per thread in Go: keep this thread for
		// the whole life of the child, and never unlock it.
		runtime.LockOSThread()
		// syscall rather than os: no pidfd probe, one fork less.
		pid, _, err := syscall.StartProcess("/proc/self/exe", argv, attr)
		if err != nil {
			startc <- started{err: err}
			return
		}
		startc <- started{pid: pid}
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		waitc <- syscall.WaitStatus(ws)
	}()
	st := <-startc
	if st.err != nil {
		return Result{}, &SpawnError{Err: unwrapPathError(st.err)}
	}
	childEnd.Close()
	specR.Close()
	pid := st.pid
	stage("spawned", time.Now())

	// The spec goes down the pipe while the child starts and the id maps
	// are written. The child reads until EOF; a child that dies early
	// makes the write fail, which its wait status then explains.
	go func() {
		json.NewEncoder(specW).Encode(newChildSpec(s))
		specW.Close()
	}()

	// From here on every failure kills the child before returning.
	kill := func() {
		unix.Kill(pid, unix.SIGKILL)
		<-waitc
	}
	if o.Mapper != nil {
		if err := o.Mapper.MapIDs(ctx, pid); err != nil {
			kill()
			return Result{}, &MapError{Err: err}
		}
		stage("idmapped", time.Now())
	}
	if err := parentEnd.send(message{Kind: msgContinue}); err != nil {
		kill()
		return Result{}, &ProtocolError{Detail: "send continue: " + err.Error()}
	}
	// After continue, so it is off the child's critical path. A signal
	// that arrives before is handled by the default action, which ends
	// the CLI and, through the parent-death signal, the sandbox.
	sigch := make(chan os.Signal, 16)
	signal.Notify(sigch, forwarded...)
	defer signal.Stop(sigch)

	msgs := make(chan received, 4)
	go readMessages(parentEnd, msgs)

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
	)
	defer func() {
		if tty != nil {
			tty.stop()
		}
	}()
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
				for _, t := range r.m.Times {
					stage("child-"+t.Stage, time.Unix(0, t.Nanos))
				}
				stage("ready", time.Now())
				for _, sig := range pending {
					unix.PidfdSendSignal(cmdFd, sig.(syscall.Signal), nil, 0)
				}
				pending = nil
			case msgFailed:
				childErr = r.m.childError()
			case msgExit:
				m := r.m
				exitMsg = &m
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
		case ws := <-waitc:
			// Drain what the child sent before it exited; msgs is nil
			// when the reader already saw the end of the socket.
			for r := range orClosed(msgs) {
				if r.err == nil && r.m.Kind == msgExit {
					m := r.m
					exitMsg = &m
				} else if r.err == nil && r.m.Kind == msgFailed {
					childErr = r.m.childError()
				}
				closeAll(r.fds)
			}
			if tty != nil {
				tty.finish()
			}
			stage("exited", time.Now())
			if childErr != nil {
				return Result{}, childErr
			}
			if exitMsg != nil {
				if exitMsg.Signal != 0 {
					return Result{ExitCode: 128 + exitMsg.Signal, Signal: syscall.Signal(exitMsg.Signal)}, nil
				}
				return Result{ExitCode: exitMsg.Status}, nil
			}
			if !ready {
				return Result{}, &ProtocolError{Detail: "the sandbox's init exited during set-up (" + describeStatus(ws) + ")"}
			}
			if ws.Signaled() {
				return Result{ExitCode: 128 + int(ws.Signal()), Signal: ws.Signal()}, nil
			}
			return Result{ExitCode: ws.ExitStatus()}, nil
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

// setupCaps are the child's capabilities: CAP_SYS_ADMIN for the mounts,
// CAP_SETPCAP to shrink the bounding set, and whatever the command is
// granted, which it must hold to pass on.
func setupCaps(s *spec.Spec) []uintptr {
	caps := []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP}
	if c := s.OCI.Process.Capabilities; c != nil {
		for _, name := range c.Ambient {
			if n, ok := spec.CapNumber(name); ok && n != unix.CAP_SYS_ADMIN && n != unix.CAP_SETPCAP {
				caps = append(caps, uintptr(n))
			}
		}
	}
	return caps
}

type received struct {
	m   message
	fds []int
	err error
}

func readMessages(c conn, out chan<- received) {
	defer close(out)
	for {
		m, fds, err := c.recv()
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
