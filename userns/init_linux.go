package userns

import "golang.org/x/sys/unix"

// reap is PID 1's loop: it reaps every child (orphans are re-parented to
// it) with a blocking wait. When the command ends it kills and reaps
// whatever the command left running, then reports the command's status and
// returns its exit code. So when the report arrives nothing of the sandbox
// runs any more, and the parent may return before PID 1 has ended and the
// kernel has torn down its namespaces (a few milliseconds).
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
		endAll()
		ch.conn.send(m)
		return code
	}
}

// endAll kills every other process of the PID namespace and waits until
// they are gone. Only as PID 1: kill(-1) from anywhere else would reach
// processes outside the sandbox.
func endAll() {
	if unix.Getpid() != 1 {
		return
	}
	unix.Kill(-1, unix.SIGKILL)
	for {
		_, err := unix.Wait4(-1, nil, 0, nil)
		if err != nil && err != unix.EINTR {
			return // ECHILD: none left
		}
	}
}
