package registry

import "syscall"

// sysProcAttr kills the registry if the test binary dies without running
// its cleanups (a panic in another goroutine, SIGKILL from a CI timeout):
// an orphaned registry would hold its port and temp dir forever.
// PR_SET_PDEATHSIG fires when the thread that forked exits; the Go runtime
// does not retire threads of goroutines that are not locked to them, so
// in a test binary that is the process's death (prctl(2)).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
