package userns

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// helperTimerSlack is the timer slack (ns) the sandbox's own processes
// (the init, the pre-spawner, the image store's helper: whatever
// StartLocked or WithHelperTimerSlack starts) start with instead of the
// caller's (usually 50 µs). After every wake-up from a system call, a Go
// program's monitor thread polls in 20 µs sleeps, about fifty of them;
// each wake-up takes tens of µs of a CPU on a virtual machine, from the
// run the process serves (measured: 1.8 ms of a 21 ms run on two vCPUs).
// With this slack those sleeps last milliseconds. Nothing in these
// processes waits on a timer that needs more precision, and the command
// gets the caller's slack back (childSpec.TimerSlack).
const helperTimerSlack = 4_000_000

// defaultTimerSlack is the kernel's default timer slack (ns).
const defaultTimerSlack = 50_000

// WithHelperTimerSlack runs start, which forks a helper process, on a
// thread whose timer slack is helperTimerSlack, so the helper starts with
// it; the thread's own slack is restored after. No other thread of ours
// inherits it meanwhile: the runtime never clones a new thread from a
// locked one.
func WithHelperTimerSlack(start func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old := ownTimerSlack()
	unix.Prctl(unix.PR_SET_TIMERSLACK, helperTimerSlack, 0, 0, 0)
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	start()
}

// ownTimerSlack is the calling thread's timer slack (ns).
func ownTimerSlack() uint64 {
	n, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || n <= 0 {
		return defaultTimerSlack
	}
	return uint64(n)
}

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
		var (
			pid int
			err error
		)
		WithHelperTimerSlack(func() { pid, err = syscall.ForkExec(path, argv, attr) })
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
