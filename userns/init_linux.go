package userns

import "golang.org/x/sys/unix"

// reap is PID 1's loop: forward signals to the command, reap every child
// (orphans are re-parented to us), and when the command ends report its
// status and return its exit code. Returning ends PID 1, and with it the
// PID namespace: the kernel kills whatever the command left running.
func (ch *child) reap(pid int) int {
	for sig := range ch.sigs {
		s := sig.(unix.Signal)
		switch s {
		case unix.SIGCHLD:
			if code, done := ch.reapAll(pid); done {
				return code
			}
		case unix.SIGURG:
			// Used by the Go runtime for preemption; never forwarded.
		default:
			unix.Kill(pid, s)
		}
	}
	return 125
}

func (ch *child) reapAll(pid int) (int, bool) {
	var code int
	done := false
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if got <= 0 || err != nil {
			break
		}
		if got != pid {
			continue
		}
		m := message{Kind: msgExit}
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
		done = true
	}
	return code, done
}
