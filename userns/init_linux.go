package userns

import "golang.org/x/sys/unix"

// reap is PID 1's loop: it reaps every child (orphans are re-parented to
// it) with a blocking wait, and when the command ends reports its status
// and returns its exit code. Returning ends PID 1, and with it the PID
// namespace: the kernel kills whatever the command left running.
//
// PID 1 installs no signal handlers: the parent signals the command
// directly through a pidfd, and a signal sent to PID 1 itself from outside
// ends the sandbox (the Go runtime exits on it), which is what killing a
// sandbox's init should do.
func (ch *child) reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// ECHILD: nothing left to wait for, the command included.
			ch.conn.send(failure(StageExec, "wait", "", err))
			return 125
		}
		if got != pid {
			continue
		}
		m := message{Kind: msgExit}
		var code int
		switch {
		case ws.Exited():
			m.Status = ws.ExitStatus()
			code = m.Status
		case ws.Signaled():
			m.Signal = int(ws.Signal())
			code = 128 + m.Signal
		default:
			continue
		}
		ch.conn.send(m)
		return code
	}
}
