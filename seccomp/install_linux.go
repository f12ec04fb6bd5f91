package seccomp

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads prog as a seccomp filter on the calling thread only
// (seccomp(2) SECCOMP_SET_MODE_FILTER without SECCOMP_FILTER_FLAG_TSYNC):
// the thread and what it forks afterwards are filtered, the process's
// other threads are not. The error wraps the errno: EACCES means
// no_new_privs is not set, EINVAL a program the kernel rejects or a kernel
// without CONFIG_SECCOMP_FILTER.
//
// Preconditions: the goroutine is locked to its thread
// (runtime.LockOSThread) and stays locked until the thread has forked
// what is to be filtered; no_new_privs is set on the thread
// (prctl PR_SET_NO_NEW_PRIVS), or it has CAP_SYS_ADMIN.
func Install(prog []Instruction) error {
	if len(prog) == 0 || len(prog) > MaxInstructions {
		return fmt.Errorf("seccomp program of %d instructions, the kernel takes 1 to %d", len(prog), MaxInstructions)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return os.NewSyscallError("seccomp", errno)
	}
	return nil
}
