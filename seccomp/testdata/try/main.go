// Command try is the seccomp package's test helper. It loads a filter on
// its locked main thread and then, on that same thread, either makes
// system calls with harmless arguments and prints "name errno" for each
// ("0" for success), or forks and runs a command and prints "exit N".
//
//	try [-filter default|nested|none] [-prog FILE] call NAME...
//	try [-filter default|nested|none] [-prog FILE] exec PATH ARG...
//
// -prog loads the encoded program in FILE (seccomp.Encode) instead of the
// default profile's.
//
// Every call is chosen to fail harmlessly (a bad fd, a NULL pointer,
// conflicting flags) or to do nothing when no filter stops it, so the
// unfiltered run (-filter none) shows what the filter changed.
//
// Exit status 3 means seccomp filters are unavailable here.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"sandbox/seccomp"
)

// int80 makes system call nr through the i386 ABI (int $0x80) and returns
// the raw result.
func int80(nr uintptr) uintptr

const (
	x32Bit          = 0x40000000
	addrNoRandomize = 0x0040000 // personality(2) ADDR_NO_RANDOMIZE
)

var calls = map[string]func() unix.Errno{
	"getpid": func() unix.Errno { return sys(unix.SYS_GETPID) },
	"uname": func() unix.Errno {
		var u unix.Utsname
		return sys(unix.SYS_UNAME, uintptr(unsafe.Pointer(&u)))
	},
	"future":           func() unix.Errno { return sys(1000) },
	"ioctl_tcgets":     func() unix.Errno { return ioctl(unix.TCGETS) },
	"ioctl_tiocsti":    func() unix.Errno { return ioctl(unix.TIOCSTI) },
	"ioctl_tiocsti_hi": func() unix.Errno { return ioctl(1<<32 | unix.TIOCSTI) },
	"ioctl_tioclinux":  func() unix.Errno { return ioctl(unix.TIOCLINUX) },
	// clone3(NULL, 0) is EINVAL to the kernel.
	"clone3": func() unix.Errno { return sys(unix.SYS_CLONE3, 0, 0) },
	// CLONE_FS with a new user or mount namespace is EINVAL to the kernel.
	"clone_newuser": func() unix.Errno { return rawSys(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS) },
	"clone_newns":   func() unix.Errno { return rawSys(unix.SYS_CLONE, unix.CLONE_NEWNS|unix.CLONE_FS) },
	// A multithreaded process cannot unshare its user namespace: EINVAL.
	"unshare_user": func() unix.Errno { return sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER) },
	"unshare_none": func() unix.Errno { return sys(unix.SYS_UNSHARE, 0) },
	"setns":        func() unix.Errno { return sys(unix.SYS_SETNS, ^uintptr(0), 0) },
	"bpf":          func() unix.Errno { return sys(unix.SYS_BPF, ^uintptr(0), 0, 0) },
	"keyctl":       func() unix.Errno { return sys(unix.SYS_KEYCTL, ^uintptr(0)) },
	"perf_event_open": func() unix.Errno {
		return sys(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0)
	},
	"userfaultfd":       func() unix.Errno { return sys(unix.SYS_USERFAULTFD, ^uintptr(0)) },
	"io_uring_setup":    func() unix.Errno { return sys(unix.SYS_IO_URING_SETUP, 0, 0) },
	"mount":             func() unix.Errno { return sys(unix.SYS_MOUNT, 0, 0, 0, 0, 0) },
	"fsopen":            func() unix.Errno { return sys(unix.SYS_FSOPEN, 0, 0) },
	"open_tree":         func() unix.Errno { return sys(unix.SYS_OPEN_TREE, ^uintptr(0), 0, 0) },
	"open_by_handle_at": func() unix.Errno { return sys(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(0), 0, 0) },
	"clock_settime":     func() unix.Errno { return sys(unix.SYS_CLOCK_SETTIME, unix.CLOCK_REALTIME, 0) },
	// settimeofday(NULL, NULL) changes nothing.
	"settimeofday":      func() unix.Errno { return sys(unix.SYS_SETTIMEOFDAY, 0, 0) },
	"personality_query": func() unix.Errno { return sys(unix.SYS_PERSONALITY, 0xffffffff) },
	// Only this process's later execs would run without ASLR.
	"personality_norandom": func() unix.Errno { return sys(unix.SYS_PERSONALITY, addrNoRandomize) },
	"x32_getpid":           func() unix.Errno { return sys(x32Bit | unix.SYS_GETPID) },
	"i386_getpid":          i386Getpid,
}

// faulted stands for a call that faulted instead of returning; printed as
// FAULT.
const faulted = unix.Errno(0xffff)

// i386Getpid calls getpid through int $0x80. A kernel booted with
// ia32_emulation=0 (or a hypervisor without it) answers int $0x80 with a
// general protection fault, which becomes a panic here.
func i386Getpid() (e unix.Errno) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			e = faulted
		}
	}()
	const nr = 20 // getpid in the i386 table
	r := int64(int80(nr))
	if r < 0 && r >= -4095 {
		return unix.Errno(-r)
	}
	return 0
}

func sys(nr uintptr, args ...uintptr) unix.Errno {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return e
}

// rawSys is for clone, which must not be interrupted by the scheduler's
// bookkeeping should it ever succeed.
func rawSys(nr uintptr, args ...uintptr) unix.Errno {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return e
}

// ioctl sends req to fd 0, which the test makes /dev/null.
func ioctl(req uintptr) unix.Errno {
	var buf [64]byte
	return sys(unix.SYS_IOCTL, 0, req, uintptr(unsafe.Pointer(&buf[0])))
}

func main() {
	runtime.LockOSThread() // never unlocked: the filter is this thread's
	filter := flag.String("filter", "default", "default, nested or none")
	progFile := flag.String("prog", "", "load this encoded program instead")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: try [-filter default|nested|none] [-prog FILE] call NAME... | exec PATH ARG...")
		os.Exit(2)
	}
	if *filter != "none" || *progFile != "" {
		if err := available(); err != nil {
			fmt.Fprintln(os.Stderr, "unavailable:", err)
			os.Exit(3)
		}
		if err := lockDown(*filter == "nested", *progFile); err != nil {
			fmt.Fprintln(os.Stderr, "lock down:", err)
			os.Exit(1)
		}
	}
	switch args[0] {
	case "call":
		for _, name := range args[1:] {
			f, ok := calls[name]
			if !ok {
				fmt.Fprintln(os.Stderr, "unknown call", name)
				os.Exit(2)
			}
			switch e := f(); e {
			case 0:
				fmt.Println(name, 0)
			case faulted:
				fmt.Println(name, "FAULT")
			default:
				fmt.Println(name, unix.ErrnoName(e))
			}
		}
	case "exec":
		pid, err := syscall.ForkExec(args[1], args[1:], &syscall.ProcAttr{
			Env:   os.Environ(),
			Files: []uintptr{0, 1, 2},
		})
		if err != nil {
			fmt.Println("exec", err)
			os.Exit(1)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			fmt.Println("wait", err)
			os.Exit(1)
		}
		fmt.Println("exit", ws.ExitStatus(), ws.Signaled())
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", args[0])
		os.Exit(2)
	}
}

// available asks the kernel whether it takes filters that allow:
// seccomp(SECCOMP_GET_ACTION_AVAIL) fails without CONFIG_SECCOMP_FILTER,
// and with EPERM or ENOSYS under a container runtime's filter that forbids
// seccomp itself.
func available() error {
	action := uint32(unix.SECCOMP_RET_ALLOW)
	if e := sys(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action))); e != 0 {
		return fmt.Errorf("seccomp(SECCOMP_GET_ACTION_AVAIL): %w", e)
	}
	return nil
}

func lockDown(nested bool, progFile string) error {
	prog, err := seccomp.Compile(seccomp.Default(seccomp.Options{AllowNestedUserns: nested}))
	if progFile != "" {
		var b []byte
		if b, err = os.ReadFile(progFile); err == nil {
			prog, err = seccomp.Decode(b)
		}
	}
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	return seccomp.Install(prog)
}
