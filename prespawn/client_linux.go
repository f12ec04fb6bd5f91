package prespawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/userns"
)

// ErrNone: no pre-spawner serves this context; Start one for next time.
var ErrNone = errors.New("no pre-spawner for this context")

// Taken is a pre-spawned init and the connection to its pre-spawner.
type Taken struct {
	Sandbox *userns.Spawned
	conn    int
}

// Done tells the pre-spawner that this run is over, so it may spawn the
// next sandbox without taking CPU from this one's set-up and teardown.
// spec, when not nil, is the run's encoded spec (userns.EncodeSpec): the
// next sandbox builds the same root ahead (userns.Speculation keeps
// nothing of the run's process).
func (t *Taken) Done(spec []byte) {
	if t.conn >= 0 {
		if spec != nil {
			unix.Sendmsg(t.conn, spec, nil, nil, unix.MSG_DONTWAIT)
		}
		unix.Close(t.conn)
		t.conn = -1
	}
}

// Take gets a pre-spawned init from the pre-spawner for key, waiting at
// most wait for it to have one ready. The caller runs it with
// (*userns.Spawned).Run and calls Done when the run is over. Any error
// means: run directly.
func Take(dir *os.File, key string, extra []string, wait time.Duration) (*Taken, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: inDir(dir, socketName(key))}); err != nil {
		if err == unix.ENOENT || err == unix.ECONNREFUSED {
			return nil, ErrNone
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	// The pre-spawner must be what its socket's name says: ours, in our
	// context. Anything else in our directory is not trusted with the spec.
	// The check overlaps the pre-spawner's check of us; nothing is sent to
	// it before both are done.
	p, err := peerOf(fd)
	if err != nil {
		return nil, err
	}
	type checked struct {
		mounts string
		err    error
	}
	check := make(chan checked, 1)
	go func() {
		defer p.close()
		if err := p.matches(key, extra); err != nil {
			check <- checked{err: fmt.Errorf("pre-spawner: %w", err)}
			return
		}
		mounts, err := MountsHash("/proc/self")
		check <- checked{mounts: mounts, err: err}
	}()
	tv := unix.NsecToTimeval(wait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		<-check
		return nil, err
	}
	m, fds, err := recvHandoff(fd)
	c := <-check
	if c.err != nil {
		closeAll(fds)
		return nil, c.err
	}
	if err != nil {
		if err == unix.EAGAIN {
			return nil, fmt.Errorf("pre-spawner: nothing ready within %s", wait)
		}
		return nil, err
	}
	if m.Kind == "busy" {
		return nil, errors.New("pre-spawner: its sandbox is taken by a run still going on")
	}
	if m.Kind != "sandbox" || len(fds) != 3 {
		closeAll(fds)
		return nil, fmt.Errorf("pre-spawner refused: %s", m.Detail)
	}
	if c.mounts != m.Mounts {
		// Closing the init's sync socket and spec pipe ends it.
		closeAll(fds)
		return nil, errors.New("pre-spawner: the mount table changed since the sandbox was spawned")
	}
	sp, err := userns.Adopt(os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "spec-w"), os.NewFile(uintptr(fds[2]), "init-pidfd"))
	if err != nil {
		return nil, err
	}
	keep = true
	return &Taken{Sandbox: sp, conn: fd}, nil
}

// Start launches a pre-spawner in the background: "/proc/self/exe ARGS...",
// with dir as fd 3, in a session of its own, with no terminal and an empty
// environment. It is not waited for; it outlives the caller.
func Start(dir *os.File, args []string) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	argv := append([]string{"sandbox"}, args...)
	userns.WithHelperTimerSlack(func() {
		_, _, err = syscall.StartProcess("/proc/self/exe", argv, &syscall.ProcAttr{
			Dir:   "/",
			Env:   []string{},
			Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), dir.Fd()},
			Sys:   &syscall.SysProcAttr{Setsid: true},
		})
	})
	if err != nil {
		return fmt.Errorf("start pre-spawner: %w", err)
	}
	return nil
}

// Serving counts the pre-spawners listening in dir. It only connects: a
// pre-spawner gives nothing to a peer that does not match it.
func Serving(dir *os.File) int {
	socks, _ := filepath.Glob(inDir(dir, "warm-*.sock"))
	n := 0
	for _, s := range socks {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Connect(fd, &unix.SockaddrUnix{Name: s}) == nil {
			n++
		}
		unix.Close(fd)
	}
	return n
}
