package userns

import (
	"runtime"
	"syscall"
)

// StartLocked starts path on a goroutine locked to its OS thread and
// reaps it there; the channel delivers its wait status. In Go a
// parent-death signal (SysProcAttr.Pdeathsig) fires when the thread that
// forked exits, so that thread is kept for the child's whole life. It is
// unlocked, not ended, once the child is reaped: ending it would also
// signal whatever earlier, unlocked code had started from it.
func StartLocked(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	type started struct {
		pid int
		err error
	}
	startc := make(chan started, 1)
	waitc := make(chan syscall.WaitStatus, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// syscall rather than os: no pidfd probe, one fork less.
		pid, err := syscall.ForkExec(path, argv, attr)
		startc <- started{pid, err}
		if err != nil {
			return
		}
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
		waitc <- ws
	}()
	st := <-startc
	return st.pid, waitc, st.err
}
