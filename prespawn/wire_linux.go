package prespawn

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"sandbox/userns"
)

// handoff is the one message a pre-spawner sends a run: the init's sync
// socket, spec pipe and pidfd are attached when Kind is "sandbox". It
// travels as Kind and Mounts, each ended by a newline, then Detail (an
// error's text, which may hold newlines).
type handoff struct {
	Kind   string // "sandbox", "busy" or "refused"
	Mounts string
	Detail string
}

func sendHandoff(fd int, m handoff, fds ...int) error {
	return userns.SendPacket(fd, []byte(m.Kind+"\n"+m.Mounts+"\n"+m.Detail), fds...)
}

func recvHandoff(fd int) (handoff, []int, error) {
	buf := make([]byte, 4096)
	n, flags, fds, err := userns.RecvWithFDs(fd, buf, 3)
	if err != nil {
		return handoff{}, nil, err
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n == 0 {
		closeAll(fds)
		return handoff{}, nil, errors.New("pre-spawner closed the connection")
	}
	kind, rest, ok := strings.Cut(string(buf[:n]), "\n")
	mounts, detail, ok2 := strings.Cut(rest, "\n")
	if !ok || !ok2 {
		closeAll(fds)
		return handoff{}, nil, fmt.Errorf("pre-spawner: malformed message %q", buf[:n])
	}
	return handoff{Kind: kind, Mounts: mounts, Detail: detail}, fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// peer is the process at the other end of a unix socket.
type peer struct {
	pid, uid int
	pidfd    int // -1 if the kernel has no SO_PEERPIDFD (before 6.5)
}

func peerOf(fd int) (peer, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return peer{}, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	p := peer{pid: int(cred.Pid), uid: int(cred.Uid), pidfd: -1}
	if pfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
		p.pidfd = pfd
		unix.CloseOnExec(pfd)
	}
	return p, nil
}

func (p peer) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
	}
}

// matches tells whether the peer's fingerprint is key. The pid is a
// snapshot: with a pidfd, the process is checked to be alive after its
// /proc files were read, so they were its own and not a successor's.
func (p peer) matches(key string, extra []string) error {
	if p.uid != unix.Getuid() {
		return fmt.Errorf("peer uid %d is not ours", p.uid)
	}
	if p.pid <= 0 {
		return errors.New("peer is outside our PID namespace")
	}
	got, err := Fingerprint(fmt.Sprintf("/proc/%d", p.pid), extra)
	if err != nil {
		return err
	}
	if p.pidfd >= 0 {
		if err := unix.PidfdSendSignal(p.pidfd, 0, nil, 0); err != nil {
			return fmt.Errorf("peer exited: %w", err)
		}
	}
	if got != key {
		return errors.New("peer runs in a different context (namespaces, credentials, confinement, cgroup or limits)")
	}
	return nil
}
