package userns

// The re-exec protocol. The parent starts "/proc/self/exe __init
// --sync-fd=3 --spec-fd=4" with every namespace requested at clone time.
// fd 3 is one end of a SOCK_SEQPACKET socket pair, one message per packet
// (encodeMessage); fd 4 is the read end of a pipe that carries the frozen spec in
// the binary frame of speccodec.go, written by the parent after the spawn
// so that encoding it overlaps the child's start.
//
//	PARENT (caller's namespaces)              CHILD (becomes PID 1 inside)
//	clone(NEWUSER|NEWNS|NEWPID|...) + exec ──▶ (Go runtime starts)
//	write the spec to the pipe ──────────────▶ hello; catch signals;
//	newuidmap/newgidmap on the child's pid     read the spec from fd 4
//	  (single map: written before the exec)
//	continue ─────────────────────────────────▶
//	                                           non-dumpable; open bind sources;
//	                             ◀──────────── fuse     (fuse-overlayfs root only:
//	start the daemon (ServeRoot)                 /dev/fuse and userns fds attached)
//	                                           root tmpfs, mounts, symlinks,
//	                                           pivot_root, detach old root,
//	                                           lock down, start the command
//	                             ◀──────────── pty      (with -t; master fd attached)
//	                             ◀──────────── ready    (command started; its pidfd attached)
//	signals go to the command's pidfd          reap every child (blocking wait4)
//	                             ◀──────────── exit     (command ended)
//
// A pre-spawner (package prespawn) runs the part up to continue ahead of
// time (Spawn) and hands the parent end of the socket, the spec pipe and a
// pidfd of the child to the run that takes it (Adopt). That run's continue
// carries its stdin, stdout and stderr and says adopted: the child puts
// them on fds 0-2, clears its parent-death signal (its parent is the
// pre-spawner, which may exit first) and from then on exits when the
// socket's other end closes. The adopter learns the end from the pidfd.
//
// Before the run's spec, a pre-spawner may write a speculative one
// (Speculation: the root of the run before, without a process). The child
// builds that root ahead, attached on /proc of its own mount namespace,
// and takes it for the run's spec only if it is the same root, still
// bound to the same files (prebuilt).
//
// hello only tells the parent the child is alive; continue does not wait
// for it. At any point before ready the child may send failed instead, and
// then exits. EOF on the socket before exit means the child died; the
// parent then takes the child's own wait status.

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Message kinds.
const (
	msgHello    = "hello"
	msgContinue = "continue"
	msgPty      = "pty"
	msgReady    = "ready"
	msgExit     = "exit"
	msgFailed   = "failed"
	msgFuse     = "fuse"
)

// Stages named in failed messages and debug timings.
const (
	StageStart  = "start"
	StageMounts = "mounts"
	StagePivot  = "pivot"
	StageLock   = "lockdown"
	StageExec   = "exec"
)

// message is one packet. Only the fields of its kind are set.
type message struct {
	Kind string

	// failed
	Stage  string
	Op     string
	Path   string
	Errno  int
	Detail string
	// KernelOverlay: the kernel refused to mount the overlay root.
	KernelOverlay bool

	// continue: the init was spawned by another process and handed off;
	// the caller's stdin, stdout and stderr are attached.
	Adopted bool

	// ready
	Pid int
	// Times are the child's stage timestamps (Unix nanoseconds), sent with
	// ready when debugging.
	Times []StageTime

	// exit
	Status int
	Signal int
}

// StageTime is when the child reached a stage.
type StageTime struct {
	Stage string
	Nanos int64
}

// maxMessage bounds a packet; messages are small.
const maxMessage = 64 << 10

// conn is one end of the sync socket. The parent's end is non-blocking
// and waits in the runtime's poller (pollableConn): a goroutine waiting
// for the init's next message holds no thread of its own. The init's end
// blocks.
type conn struct {
	f *os.File
	// nonblock: the socket never blocks (pollableConn), so a receive
	// need not tell the runtime it enters a system call.
	nonblock bool
}

// pollableConn makes the socket fd a non-blocking conn; it closes fd on
// failure.
func pollableConn(fd int, name string) (conn, error) {
	f, err := pollable(fd, name)
	if err != nil {
		return conn{}, err
	}
	return conn{f: f, nonblock: true}, nil
}

// pollable makes fd non-blocking and a file the runtime's poller waits
// on; it closes fd on failure.
func pollable(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// pollableDup is pollable on a close-on-exec duplicate of fd.
func pollableDup(fd uintptr, name string) (*os.File, error) {
	d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, err
	}
	return pollable(d, name)
}

func (c conn) send(m message, fds ...int) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	b := encodeMessage(m)
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = SendPacket(int(fd), b, fds...)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// SendPacket writes b as one packet on the socket fd, with fds attached
// (SCM_RIGHTS). RecvWithFDs reads it.
func SendPacket(fd int, b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

// A message travels as its fields in a fixed order, in the spec's binary
// form (speccodec.go): both ends are the same executable (a pre-spawned
// init goes only to a run of the binary that spawned it), and a run's
// first JSON message cost its CLI the reflection over the type, about
// 0.3 ms, on the start-up path.
func encodeMessage(m message) []byte {
	w := &specWriter{b: make([]byte, 0, 64)}
	w.str(m.Kind)
	w.str(m.Stage)
	w.str(m.Op)
	w.str(m.Path)
	w.uint(uint64(m.Errno))
	w.str(m.Detail)
	w.bool(m.KernelOverlay)
	w.bool(m.Adopted)
	w.uint(uint64(m.Pid))
	w.count(len(m.Times), m.Times == nil)
	for _, t := range m.Times {
		w.str(t.Stage)
		w.uint(uint64(t.Nanos))
	}
	w.uint(uint64(m.Status))
	w.uint(uint64(m.Signal))
	return w.b
}

// decodeMessage reads what encodeMessage wrote; numbers out of an int32's
// range, short packets and trailing bytes are errors.
func decodeMessage(b []byte) (message, error) {
	r := &specReader{b: b}
	m := message{Kind: r.str(), Stage: r.str(), Op: r.str(), Path: r.str(), Errno: r.int31(), Detail: r.str()}
	m.KernelOverlay, m.Adopted = r.bool(), r.bool()
	m.Pid = r.int31()
	if n := r.count(); n >= 0 {
		m.Times = make([]StageTime, n)
		for i := range m.Times {
			m.Times[i] = StageTime{Stage: r.str(), Nanos: int64(r.uint() & (1<<63 - 1))}
		}
	}
	m.Status, m.Signal = r.int31(), r.int31()
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the message", len(r.b))
	}
	if r.err != nil {
		return message{}, fmt.Errorf("message: %w", r.err)
	}
	return m, nil
}

// recv reads one message. io.EOF-like closure is reported as errPeerGone.
// Any fds attached are returned (the caller owns them).
// buf holds the packet (maxMessage bytes suffice).
func (c conn) recv(buf []byte) (message, []int, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return message{}, nil, fmt.Errorf("sync socket: %w", err)
	}
	var (
		n, flags int
		fds      []int
	)
	if rerr := rc.Read(func(fd uintptr) bool {
		if c.nonblock {
			n, flags, fds, err = recvRaw(int(fd), buf, 4)
		} else {
			n, flags, fds, err = RecvWithFDs(int(fd), buf, 4)
		}
		return err != unix.EAGAIN
	}); rerr != nil {
		err = rerr
	}
	if err != nil {
		return message{}, nil, fmt.Errorf("sync socket: %w", err)
	}
	if n == 0 {
		closeAll(fds)
		return message{}, nil, errPeerGone
	}
	if flags&unix.MSG_TRUNC != 0 {
		closeAll(fds)
		return message{}, nil, errors.New("sync socket: message truncated")
	}
	m, err := decodeMessage(buf[:n])
	if err != nil {
		closeAll(fds)
		return message{}, nil, fmt.Errorf("sync socket: %w", err)
	}
	return m, fds, nil
}

// RecvWithFDs reads one packet from the socket fd into buf, with up to
// maxFDs fds attached (received close-on-exec; the caller owns them),
// retrying on EINTR. n is 0 at the end of the stream.
func RecvWithFDs(fd int, buf []byte, maxFDs int) (n, flags int, fds []int, err error) {
	oob := make([]byte, unix.CmsgSpace(maxFDs*4))
	for {
		var oobn int
		n, oobn, flags, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, 0, nil, err
		}
		return n, flags, rights(oob[:oobn]), nil
	}
}

// recvRaw is RecvWithFDs on a non-blocking socket, without the runtime's
// system-call bookkeeping: a goroutine that the poller woke and that then
// enters a system call wakes the runtime's monitor thread from its deep
// sleep into fifty 20 µs polls, which cost the run on a small VM.
func recvRaw(fd int, buf []byte, maxFDs int) (n, flags int, fds []int, err error) {
	oob := make([]byte, unix.CmsgSpace(maxFDs*4))
	var iov unix.Iovec
	if len(buf) > 0 {
		iov.Base = &buf[0]
		iov.SetLen(len(buf))
	}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	for {
		r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, 0, nil, e
		}
		n, flags = int(r), int(msg.Flags)
		break
	}
	return n, flags, rights(oob[:msg.Controllen]), nil
}

// rights are the fds of the SCM_RIGHTS messages in oob.
func rights(oob []byte) []int {
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob); err == nil {
		for _, cm := range cmsgs {
			if got, err := unix.ParseUnixRights(&cm); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	return fds
}

var errPeerGone = errors.New("peer closed the sync socket")

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// ChildError is a failure the child reported before the command started.
type ChildError struct {
	Stage  string
	Op     string
	Path   string
	Errno  syscall.Errno
	Detail string
	// KernelOverlay: the kernel refused to mount the overlay root, which
	// fuse-overlayfs may still serve.
	KernelOverlay bool
}

func (e *ChildError) Error() string {
	s := "child: " + e.Stage
	if e.Op != "" {
		s += ": " + e.Op
	}
	if e.Path != "" {
		s += " " + e.Path
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Errno != 0 {
		s += ": " + e.Errno.Error()
	}
	return s
}

func (e *ChildError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

func (m message) childError() *ChildError {
	return &ChildError{Stage: m.Stage, Op: m.Op, Path: m.Path, Errno: syscall.Errno(m.Errno), Detail: m.Detail, KernelOverlay: m.KernelOverlay}
}

// failure builds a failed message from an error, keeping the errno.
func failure(stage, op, path string, err error) message {
	m := message{Kind: msgFailed, Stage: stage, Op: op, Path: path}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		m.Errno = int(errno)
	} else if err != nil {
		m.Detail = err.Error()
	}
	return m
}

// stepError carries what a failed message needs from deep in the child.
type stepError struct {
	op   string
	path string
	err  error
}

func (e *stepError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func step(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{op: op, path: path, err: err}
}
