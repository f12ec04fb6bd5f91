package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Options tune the default profile.
type Options struct {
	// AllowNestedUserns lets the command create namespaces of its own:
	// unshare and clone are allowed whatever their flags. Opt-in, because
	// a new user namespace hands the kernel's namespaced-root code paths
	// to the command. mount, pivot_root and setns stay denied.
	AllowNestedUserns bool
}

// allowed returns the system calls ordinary programs make: libc (glibc,
// musl), the Go, Python and Java runtimes, shells, compilers, git, make.
// It follows the allowlists container runtimes ship for x86_64, leaving
// out obsolete calls and those that need a capability over the host
// (syslog, quotactl, iopl, vhangup), and adds newer calls with a libc or
// runtime user (cachestat, fchmodat2, futex2, map_shadow_stack, mseal,
// the *xattrat family, file_getattr). Calls the kernel checks against the
// sandbox's own user namespace (chroot, sethostname, setuid) stay: the
// command's capabilities decide. A name missing here fails with ENOSYS,
// which programs read as "old kernel" and work around.
//
// adjtimex stays: reading the clock state is harmless, and a timex that
// sets anything needs CAP_SYS_TIME in the initial user namespace, which a
// sandbox never has; the filter cannot tell the two apart, the modes field
// is behind a pointer.
func allowed() []string {
	return []string{
		// files and descriptors
		"access", "chdir", "chmod", "chown", "chroot", "close", "close_range",
		"copy_file_range", "creat", "dup", "dup2", "dup3", "faccessat",
		"faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat",
		"fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync", "flock",
		"fstat", "fstatfs", "fsync", "ftruncate", "getcwd", "getdents",
		"getdents64", "lchown", "link", "linkat", "lseek", "lstat", "mkdir",
		"mkdirat", "mknod", "mknodat", "name_to_handle_at", "newfstatat",
		"open", "openat", "openat2", "pread64", "preadv", "preadv2",
		"pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
		"readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir",
		"sendfile", "splice", "stat", "statfs", "statx", "symlink",
		"symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
		"umask", "unlink", "unlinkat", "utime", "utimensat", "utimes",
		"futimesat", "vmsplice", "write", "writev", "cachestat",
		"file_getattr", "file_setattr",
		// extended attributes
		"fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr",
		"getxattrat", "lgetxattr", "listxattr", "listxattrat", "llistxattr",
		"lremovexattr", "lsetxattr", "removexattr", "removexattrat",
		"setxattr", "setxattrat",
		// waiting on descriptors and events
		"epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait",
		"epoll_pwait2", "epoll_wait", "eventfd", "eventfd2", "fanotify_init",
		"fanotify_mark", "inotify_add_watch", "inotify_init", "inotify_init1",
		"inotify_rm_watch", "pipe", "pipe2", "poll", "ppoll", "pselect6",
		"select", "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime",
		"timerfd_settime",
		// asynchronous I/O (libaio; io_uring is denied below)
		"io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_setup",
		"io_submit",
		// memory
		"brk", "get_mempolicy", "madvise", "map_shadow_stack", "mbind",
		"membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
		"mlock2", "mlockall", "mmap", "mprotect", "mremap", "mseal", "msync",
		"munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free",
		"pkey_mprotect", "process_madvise", "remap_file_pages",
		"set_mempolicy", "set_mempolicy_home_node",
		// processes and threads (clone, unshare and personality below);
		// ptrace, process_vm_*, kcmp and pidfd_getfd need
		// PTRACE_MODE_ATTACH, which a process holding capabilities the
		// caller lacks (the sandbox's PID 1) refuses
		"arch_prctl", "execve", "execveat", "exit", "exit_group", "fork",
		"futex", "futex_requeue", "futex_wait", "futex_waitv", "futex_wake",
		"get_robust_list", "get_thread_area", "getcpu", "getpgid", "getpgrp",
		"getpid", "getppid", "getpriority", "getrlimit", "getrusage",
		"getsid", "gettid", "ioprio_get", "ioprio_set", "kcmp", "pidfd_getfd",
		"pidfd_open", "pidfd_send_signal", "prctl", "prlimit64",
		"process_mrelease", "process_vm_readv", "process_vm_writev", "ptrace",
		"rseq", "sched_get_priority_max", "sched_get_priority_min",
		"sched_getaffinity", "sched_getattr", "sched_getparam",
		"sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
		"sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
		"set_robust_list", "set_thread_area", "set_tid_address", "setpgid",
		"setpriority", "setrlimit", "setsid", "vfork", "wait4", "waitid",
		// credentials (the kernel checks them against the user namespace)
		"capget", "capset", "getegid", "geteuid", "getgid", "getgroups",
		"getresgid", "getresuid", "getuid", "setfsgid", "setfsuid", "setgid",
		"setgroups", "setregid", "setresgid", "setresuid", "setreuid",
		"setuid",
		// signals
		"kill", "pause", "restart_syscall", "rt_sigaction", "rt_sigpending",
		"rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
		"rt_sigtimedwait", "rt_tgsigqueueinfo", "sigaltstack", "tgkill",
		"tkill",
		// time and timers
		"adjtimex", "alarm", "clock_getres", "clock_gettime",
		"clock_nanosleep", "getitimer", "gettimeofday", "nanosleep",
		"setitimer", "time", "timer_create", "timer_delete",
		"timer_getoverrun", "timer_gettime", "timer_settime", "times",
		// sockets
		"accept", "accept4", "bind", "connect", "getpeername", "getsockname",
		"getsockopt", "listen", "recvfrom", "recvmmsg", "recvmsg", "sendmmsg",
		"sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketpair",
		// System V and POSIX IPC (namespaced by the sandbox's IPC namespace)
		"mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
		"mq_timedsend", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
		"semctl", "semget", "semop", "semtimedop", "shmat", "shmctl", "shmdt",
		"shmget",
		// the system (UTS names are the sandbox's own)
		"getrandom", "sethostname", "setdomainname", "sysinfo", "uname",
		// self-sandboxing
		"landlock_add_rule", "landlock_create_ruleset",
		"landlock_restrict_self", "lsm_get_self_attr", "lsm_list_modules",
		"seccomp",
	}
}

// denied returns the calls that fail with EPERM rather than ENOSYS, so a
// program reports "not permitted" instead of looking for a fallback:
// kernel keyrings (keyed by uid, so shared with the host user), eBPF and
// perf (large kernel attack surface), userfaultfd (stalls a kernel copy at
// will, widening exploit race windows), io_uring (its operations bypass
// the per-call filter, and a long CVE record), modules and kexec, file
// handles (the 2014 "shocker" escape), every mount API call, joining
// namespaces, process accounting, swap, reboot and setting clocks.
func denied() []string {
	return []string{
		"keyctl", "add_key", "request_key",
		"bpf", "perf_event_open", "userfaultfd",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"kexec_load", "kexec_file_load", "init_module", "finit_module",
		"delete_module",
		"open_by_handle_at",
		"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount",
		"fspick", "open_tree", "open_tree_attr", "move_mount", "mount_setattr",
		"setns",
		"acct", "swapon", "swapoff", "reboot",
		"clock_settime", "clock_adjtime", "settimeofday",
	}
}

// cloneNS and unshareNS are the clone and unshare flags that create
// namespaces.
// CLONE_NEWTIME (0x80) shares its bit with the exit signal in clone(2),
// so it is in unshareNS only: clone cannot ask for a time namespace.
const (
	cloneNS = cloneNewUser | cloneNewNS | cloneNewPID | cloneNewNet |
		cloneNewUTS | cloneNewIPC | cloneNewCgroup
	unshareNS = cloneNS | cloneNewTime
)

// personalities returns the personality(2) values programs pass: PER_LINUX,
// PER_LINUX32, UNAME26, both together, and 0xffffffff, which only queries.
// Everything else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) weakens the
// command's own hardening and is refused.
func personalities() []uint64 { return []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff} }

// Default returns the sandbox's default profile: an allowlist whose
// default action fails unknown and future system calls with ENOSYS, so
// libc and runtimes fall back as they would on an older kernel, and
// explicit EPERM for the calls a sandbox refuses (see denied), namespace
// creation, unusual personalities and terminal input injection. clone3
// fails with ENOSYS, sending libc back to clone, whose flags a filter can
// read (clone3 passes them in memory).
//
// Each call returns a new value; the caller may change it.
func Default(o Options) *specs.LinuxSeccomp {
	// A pointer of its own for every errnoRet, so that changing one rule
	// leaves the others alone.
	errno := func(e uint) *uint { return &e }
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: errno(linuxENOSYS),
		Architectures:   []specs.Arch{specs.ArchX86_64},
	}
	add := func(names []string, act specs.LinuxSeccompAction, errnoRet *uint, args ...specs.LinuxSeccompArg) {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: names, Action: act, ErrnoRet: errnoRet, Args: args})
	}
	add(allowed(), specs.ActAllow, nil)

	// TIOCSTI pushes bytes into a terminal's input queue, and TIOCLINUX
	// can set a virtual console's selection and paste it into the
	// console's input: either lets the command type into the shell that
	// started it (CVE-2017-5226, CVE-2023-1523). Compared on the low 32
	// bits, as the kernel reads the request.
	for _, req := range []uint64{tiocSTI, tiocLINUX} {
		add([]string{"ioctl"}, specs.ActErrno, errno(linuxEPERM), specs.LinuxSeccompArg{Index: 1, Value: req, Op: specs.OpEqualTo})
	}
	add([]string{"ioctl"}, specs.ActAllow, nil)

	for _, v := range personalities() {
		add([]string{"personality"}, specs.ActAllow, nil, specs.LinuxSeccompArg{Index: 0, Value: v, Op: specs.OpEqualTo})
	}
	add([]string{"personality"}, specs.ActErrno, errno(linuxEPERM))

	if o.AllowNestedUserns {
		add([]string{"clone", "unshare"}, specs.ActAllow, nil)
	} else {
		// x86_64 clone(flags, stack, parent_tid, child_tid, tls): flags
		// is argument 0.
		add([]string{"clone"}, specs.ActAllow, nil, specs.LinuxSeccompArg{Index: 0, Value: cloneNS, ValueTwo: 0, Op: specs.OpMaskedEqual})
		add([]string{"unshare"}, specs.ActAllow, nil, specs.LinuxSeccompArg{Index: 0, Value: unshareNS, ValueTwo: 0, Op: specs.OpMaskedEqual})
		add([]string{"clone", "unshare"}, specs.ActErrno, errno(linuxEPERM))
	}
	add([]string{"clone3"}, specs.ActErrno, errno(linuxENOSYS))
	add(denied(), specs.ActErrno, errno(linuxEPERM))
	return p
}

// DefaultProgram returns the compiled form of Default(Options{}), as
// Encode gives it; the same bytes every call.
func DefaultProgram() []byte { return []byte(defaultProgram) }
