// Command try is the attacker the security tests run inside a sandbox. It
// makes raw system calls by number (amd64), so that the answer it prints is
// the kernel's or the seccomp filter's, never a libc wrapper's:
//
//	try call TOKEN...          one call per TOKEN, prints "TOKEN RESULT [DETAIL]"
//	try inject FD:REQ...       pushes a payload into the terminal on FD with
//	                           ioctl(FD, REQ, &c), prints "inject FD:REQ RESULT"
//	try race SECONDS DIR A B [DIR A B]...
//	                           swaps DIR/A and DIR/B with renameat2(RENAME_EXCHANGE)
//	                           in a loop, one goroutine per pair, until SECONDS
//	                           pass or the first DIR holds a file "stop"
//	try ids                    prints "ids RUID EUID SUID CAPEFF"
//
// RESULT is OK or the errno's name (EPERM, ENOSYS, ...). A TOKEN is a name
// from the table in calls, "nr:N" (syscall N with zero arguments),
// "x32:N" (syscall N through the x32 ABI, N|0x40000000), or an operation
// on a path such as "openw:/proc/1/exe". Every call uses arguments that
// change nothing even when it is allowed: null pointers, fd -1, invalid
// flags, or a query.
//
// It is its own module so that building it needs nothing but the standard
// library, also for a user without the main module's cache.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Syscall numbers, x86_64 (arch/x86/entry/syscalls/syscall_64.tbl).
const (
	sysIoctl           = 16
	sysClone           = 56
	sysWait4           = 61
	sysUname           = 63
	sysGetresuid       = 118
	sysPersonality     = 135
	sysPivotRoot       = 155
	sysAcct            = 163
	sysSettimeofday    = 164
	sysMount           = 165
	sysUmount2         = 166
	sysSwapon          = 167
	sysSwapoff         = 168
	sysReboot          = 169
	sysInitModule      = 175
	sysDeleteModule    = 176
	sysClockSettime    = 227
	sysClockGettime    = 228
	sysExitGroup       = 231
	sysKexecLoad       = 246
	sysAddKey          = 248
	sysRequestKey      = 249
	sysKeyctl          = 250
	sysOpenat          = 257
	sysUnshare         = 272
	sysPerfEventOpen   = 298
	sysOpenByHandleAt  = 304
	sysSetns           = 308
	sysFinitModule     = 313
	sysRenameat2       = 316
	sysKexecFileLoad   = 320
	sysBpf             = 321
	sysUserfaultfd     = 323
	sysIoUringSetup    = 425
	sysIoUringEnter    = 426
	sysIoUringRegister = 427
	sysOpenTree        = 428
	sysMoveMount       = 429
	sysFsopen          = 430
	sysFsconfig        = 431
	sysFsmount         = 432
	sysFspick          = 433
	sysClone3          = 435
	sysMountSetattr    = 442

	x32Bit = 0x40000000
)

const (
	atFdcwd         = ^uintptr(99) // AT_FDCWD, -100
	fdNone          = ^uintptr(0)  // fd -1
	cloneNewNS      = 0x00020000
	cloneNewUser    = 0x10000000
	sigchld         = 17
	mntDetach       = 2
	renameExchange  = 2
	tiocsti         = 0x5412
	tioclinux       = 0x541C
	tcgets          = 0x5401
	highBits        = 0x100000000
	keySpecSession  = ^uintptr(2) // KEY_SPEC_SESSION_KEYRING, -3
	uffdUserOnly    = 1
	addrNoRandomize = 0x0040000
	queryPersona    = 0xffffffff
)

type call func(arg string) (r uintptr, e syscall.Errno, detail string)

func raw(nr uintptr, a ...uintptr) call {
	return func(string) (uintptr, syscall.Errno, string) {
		var x [6]uintptr
		copy(x[:], a)
		r, _, e := syscall.RawSyscall6(nr, x[0], x[1], x[2], x[3], x[4], x[5])
		return r, e, ""
	}
}

// closing runs c and closes the fd it returns on success.
func closing(c call) call {
	return func(arg string) (uintptr, syscall.Errno, string) {
		r, e, d := c(arg)
		if e == 0 {
			syscall.Close(int(r))
		}
		return r, e, d
	}
}

// fork clones with flags (and SIGCHLD) like fork(2) and reaps the child,
// which exits at once. Nosplit: between the clone and exit_group the child
// is a copy of one thread of a Go program and must not touch the runtime.
//
//go:nosplit
func fork(flags uintptr) (uintptr, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(sysClone, flags|sigchld, 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		syscall.RawSyscall(sysExitGroup, 0, 0, 0)
	}
	return r, e
}

func forkCall(flags uintptr) call {
	return func(string) (uintptr, syscall.Errno, string) {
		r, e := fork(flags)
		if e == 0 {
			var ws syscall.WaitStatus
			syscall.Wait4(int(r), &ws, 0, nil)
		}
		return r, e, ""
	}
}

var (
	uts     [390]byte
	ts      [2]int64
	badTime = [2]int64{0, -1} // tv_usec -1: EINVAL even for root
	slash   = cstr("/")
	null    = cstr("/dev/null")
)

func cstr(s string) *byte {
	b, err := syscall.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func ptr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

var calls = map[string]call{
	// Allowed: every program needs them.
	"getpid":            raw(syscall.SYS_GETPID),
	"uname":             raw(sysUname, ptr(&uts[0])),
	"clock_gettime":     raw(sysClockGettime, 1, ptr(&ts)),
	"openat":            closing(raw(sysOpenat, atFdcwd, ptr(null), syscall.O_RDONLY|syscall.O_CLOEXEC)),
	"fork":              forkCall(0),
	"ioctl-tcgets":      raw(sysIoctl, fdNone, tcgets, 0), // allowed: EBADF, not EPERM
	"personality-query": raw(sysPersonality, queryPersona),
	"personality-linux": raw(sysPersonality, 0),

	// Denied with EPERM by the contract. The comment is the kernel's own
	// answer to these arguments without a filter.
	"keyctl":            raw(sysKeyctl, 0, keySpecSession, 0),                              // a keyring id
	"add_key":           raw(sysAddKey, 0, 0, 0, 0, 0),                                     // EFAULT
	"request_key":       raw(sysRequestKey, 0, 0, 0, 0),                                    // EFAULT
	"bpf":               raw(sysBpf, 1000, 0, 0),                                           // EINVAL
	"perf_event_open":   raw(sysPerfEventOpen, 0, 0, fdNone, fdNone, 0),                    // EFAULT
	"userfaultfd":       raw(sysUserfaultfd, uffdUserOnly|2),                               // EINVAL
	"io_uring_setup":    raw(sysIoUringSetup, 0, 0),                                        // EFAULT or EINVAL
	"io_uring_enter":    raw(sysIoUringEnter, fdNone, 0, 0, 0, 0, 0),                       // EBADF
	"io_uring_register": raw(sysIoUringRegister, fdNone, 0, 0, 0),                          // EBADF
	"kexec_load":        raw(sysKexecLoad, 0, 0, 0, 0),                                     // EPERM
	"kexec_file_load":   raw(sysKexecFileLoad, fdNone, fdNone, 0, 0, 0),                    // EPERM
	"init_module":       raw(sysInitModule, 0, 0, 0),                                       // EPERM
	"finit_module":      raw(sysFinitModule, fdNone, 0, 0),                                 // EPERM
	"delete_module":     raw(sysDeleteModule, 0, 0),                                        // EPERM
	"open_by_handle_at": raw(sysOpenByHandleAt, fdNone, 0, 0),                              // EPERM or EBADF
	"mount":             raw(sysMount, 0, 0, 0, 0, 0),                                      // EFAULT
	"umount2":           raw(sysUmount2, 0, 0x80000000),                                    // EINVAL
	"pivot_root":        raw(sysPivotRoot, 0, 0),                                           // EPERM or EFAULT
	"fsopen":            raw(sysFsopen, 0, 0),                                              // EPERM or EFAULT
	"fsconfig":          raw(sysFsconfig, fdNone, 0, 0, 0, 0),                              // EINVAL
	"fsmount":           raw(sysFsmount, fdNone, 0, 0),                                     // EPERM or EBADF
	"fspick":            raw(sysFspick, fdNone, 0, 0),                                      // EPERM or EFAULT
	"open_tree":         closing(raw(sysOpenTree, atFdcwd, ptr(slash), syscall.O_CLOEXEC)), // an O_PATH fd
	"move_mount":        raw(sysMoveMount, fdNone, 0, fdNone, 0, 0),                        // EPERM or EFAULT
	"mount_setattr":     raw(sysMountSetattr, fdNone, 0, 0, 0, 0),                          // EINVAL
	"setns":             raw(sysSetns, fdNone, 0),                                          // EBADF
	"unshare-newuser":   raw(sysUnshare, cloneNewUser),                                     // EINVAL (threads)
	"unshare-newns":     raw(sysUnshare, cloneNewNS),                                       // EINVAL or EPERM
	"clone-newns":       forkCall(cloneNewNS),                                              // EPERM without caps
	"clone-newuser":     forkCall(cloneNewUser),                                            // a child
	"acct":              raw(sysAcct, 0),                                                   // EPERM
	"swapon":            raw(sysSwapon, 0, 0),                                              // EPERM
	"swapoff":           raw(sysSwapoff, 0),                                                // EPERM
	"reboot":            raw(sysReboot, 0, 0, 0, 0),                                        // EPERM, EINVAL for root
	"clock_settime":     raw(sysClockSettime, 0, 0),                                        // EFAULT
	"settimeofday":      raw(sysSettimeofday, ptr(&badTime), 0),                            // EINVAL
	"personality-addr-no-randomize": func(string) (uintptr, syscall.Errno, string) {
		r, _, e := syscall.RawSyscall(sysPersonality, addrNoRandomize, 0, 0)
		if e == 0 {
			syscall.RawSyscall(sysPersonality, r, 0, 0) // put the old one back
		}
		return r, e, ""
	},
	"ioctl-tiocsti":        raw(sysIoctl, fdNone, tiocsti, 0),            // EBADF
	"ioctl-tiocsti-high":   raw(sysIoctl, fdNone, highBits|tiocsti, 0),   // EBADF: the kernel uses the low 32 bits
	"ioctl-tioclinux":      raw(sysIoctl, fdNone, tioclinux, 0),          // EBADF
	"ioctl-tioclinux-high": raw(sysIoctl, fdNone, highBits|tioclinux, 0), // EBADF

	// ENOSYS by the contract.
	"clone3": raw(sysClone3, 0, 0), // EINVAL
}

// pathCalls take a path after the colon.
var pathCalls = map[string]func(p string) (uintptr, syscall.Errno, string){
	"openw": func(p string) (uintptr, syscall.Errno, string) {
		return openDo(p, syscall.O_WRONLY, nil)
	},
	"write": func(p string) (uintptr, syscall.Errno, string) {
		return openDo(p, syscall.O_WRONLY, writeOne)
	},
	"trunc": func(p string) (uintptr, syscall.Errno, string) {
		return openDo(p, syscall.O_WRONLY|syscall.O_TRUNC, writeOne)
	},
	"create": func(p string) (uintptr, syscall.Errno, string) {
		return openDo(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL, writeOne)
	},
	"read": func(p string) (uintptr, syscall.Errno, string) {
		return openDo(p, syscall.O_RDONLY, readAll)
	},
	"opendir": func(p string) (uintptr, syscall.Errno, string) {
		return openDo(p, syscall.O_RDONLY|syscall.O_DIRECTORY, listDir)
	},
	"readlink": func(p string) (uintptr, syscall.Errno, string) {
		buf := make([]byte, 4096)
		n, err := syscall.Readlink(p, buf)
		if err != nil {
			return 0, err.(syscall.Errno), ""
		}
		return 0, 0, string(buf[:n])
	},
	"stat": func(p string) (uintptr, syscall.Errno, string) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return 0, err.(syscall.Errno), ""
		}
		kind := map[uint32]string{syscall.S_IFREG: "file", syscall.S_IFDIR: "dir", syscall.S_IFCHR: "chr",
			syscall.S_IFBLK: "blk", syscall.S_IFLNK: "link", syscall.S_IFIFO: "fifo", syscall.S_IFSOCK: "sock"}[st.Mode&syscall.S_IFMT]
		// major and minor as in the kernel's new_encode_dev (sys/sysmacros.h).
		maj := (st.Rdev>>8)&0xfff | (st.Rdev>>32)&^0xfff
		min := st.Rdev&0xff | (st.Rdev>>12)&^0xff
		return 0, 0, fmt.Sprintf("type=%s rdev=%d:%d size=%d", kind, maj, min, st.Size)
	},
	"umount2": func(p string) (uintptr, syscall.Errno, string) {
		return umount(p, 0)
	},
	"umount2-detach": func(p string) (uintptr, syscall.Errno, string) {
		return umount(p, mntDetach)
	},
	"nr": func(n string) (uintptr, syscall.Errno, string) {
		nr, err := strconv.ParseUint(n, 0, 32)
		if err != nil {
			return 0, syscall.EINVAL, "bad number"
		}
		return raw(uintptr(nr))("")
	},
	"x32": func(n string) (uintptr, syscall.Errno, string) {
		nr, err := strconv.ParseUint(n, 0, 32)
		if err != nil {
			return 0, syscall.EINVAL, "bad number"
		}
		return raw(uintptr(nr) | x32Bit)("")
	},
}

func umount(p string, flags uintptr) (uintptr, syscall.Errno, string) {
	b := cstr(p)
	r, _, e := syscall.RawSyscall(sysUmount2, ptr(b), flags, 0)
	return r, e, ""
}

func openDo(p string, flags int, then func(fd int) (syscall.Errno, string)) (uintptr, syscall.Errno, string) {
	fd, err := syscall.Open(p, flags|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, err.(syscall.Errno), ""
	}
	defer syscall.Close(fd)
	if then == nil {
		return uintptr(fd), 0, ""
	}
	e, d := then(fd)
	return uintptr(fd), e, d
}

func writeOne(fd int) (syscall.Errno, string) {
	if _, err := syscall.Write(fd, []byte("1\n")); err != nil {
		return err.(syscall.Errno), "at write"
	}
	return 0, ""
}

func readAll(fd int) (syscall.Errno, string) {
	buf := make([]byte, 64<<10)
	total := 0
	for total < 1<<20 {
		n, err := syscall.Read(fd, buf)
		if err != nil {
			return err.(syscall.Errno), fmt.Sprintf("at read, bytes=%d", total)
		}
		if n == 0 {
			break
		}
		total += n
	}
	return 0, fmt.Sprintf("bytes=%d", total)
}

func listDir(fd int) (syscall.Errno, string) {
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err != nil {
			return err.(syscall.Errno), "at getdents"
		}
		if n == 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	return 0, "entries=" + strings.Join(names, ",")
}

var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT", syscall.ESRCH: "ESRCH",
	syscall.EINTR: "EINTR", syscall.EIO: "EIO", syscall.ENXIO: "ENXIO",
	syscall.E2BIG: "E2BIG", syscall.EBADF: "EBADF", syscall.ECHILD: "ECHILD",
	syscall.EAGAIN: "EAGAIN", syscall.ENOMEM: "ENOMEM", syscall.EACCES: "EACCES",
	syscall.EFAULT: "EFAULT", syscall.EBUSY: "EBUSY", syscall.EEXIST: "EEXIST",
	syscall.EXDEV: "EXDEV", syscall.ENODEV: "ENODEV", syscall.ENOTDIR: "ENOTDIR",
	syscall.EISDIR: "EISDIR", syscall.EINVAL: "EINVAL", syscall.EMFILE: "EMFILE",
	syscall.ENOTTY: "ENOTTY", syscall.ETXTBSY: "ETXTBSY", syscall.ENOSPC: "ENOSPC",
	syscall.EROFS: "EROFS", syscall.ERANGE: "ERANGE", syscall.ENOSYS: "ENOSYS",
	syscall.ELOOP: "ELOOP", syscall.EOPNOTSUPP: "EOPNOTSUPP", syscall.ENOKEY: "ENOKEY",
	syscall.EOVERFLOW: "EOVERFLOW", syscall.ENAMETOOLONG: "ENAMETOOLONG",
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "OK"
	}
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return fmt.Sprintf("errno%d", int(e))
}

// say writes one line straight to fd 1, so that every answer before a
// fatal one (SIGSYS from a killing filter) is already out.
func say(format string, args ...any) {
	syscall.Write(1, []byte(fmt.Sprintf(format, args...)+"\n"))
}

func doCall(tokens []string) int {
	rc := 0
	for _, tok := range tokens {
		name, arg, hasArg := strings.Cut(tok, ":")
		var r uintptr
		var e syscall.Errno
		var d string
		switch {
		case hasArg && pathCalls[name] != nil:
			r, e, d = pathCalls[name](arg)
		case !hasArg && calls[name] != nil:
			r, e, d = calls[name]("")
		default:
			say("%s UNKNOWN-TOKEN", tok)
			rc = 2
			continue
		}
		_ = r
		if d != "" {
			say("%s %s %s", tok, errnoName(e), d)
		} else {
			say("%s %s", tok, errnoName(e))
		}
	}
	return rc
}

// payload is pushed one byte at a time. Built at run time so that the
// string never appears literally in anything this program prints.
func payload() []byte {
	return []byte(string([]byte{'I', 'N', 'J', '3', 'C', 'T', '3', 'D'}) + "\n")
}

func doInject(tokens []string) int {
	for _, tok := range tokens {
		fdS, reqS, _ := strings.Cut(tok, ":")
		fd, err1 := strconv.Atoi(fdS)
		req, err2 := strconv.ParseUint(reqS, 0, 64)
		if err1 != nil || err2 != nil {
			say("inject %s BAD-TOKEN", tok)
			return 2
		}
		var failed syscall.Errno
		for _, c := range payload() {
			b := c
			_, _, e := syscall.RawSyscall(sysIoctl, uintptr(fd), uintptr(req), ptr(&b))
			if e != 0 {
				failed = e
				break
			}
		}
		say("inject %s %s", tok, errnoName(failed))
	}
	return 0
}

func doRace(args []string) int {
	if len(args) < 4 || (len(args)-1)%3 != 0 {
		say("usage: try race SECONDS DIR A B [DIR A B]...")
		return 2
	}
	secs, err := strconv.ParseFloat(args[0], 64)
	if err != nil {
		say("race: %v", err)
		return 2
	}
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	type pair struct {
		dir  string
		fd   int
		a, b string
	}
	var pairs []pair
	// Every directory is opened before any swapping starts: a later pair's
	// directory may be one of the names an earlier pair swaps.
	for i := 1; i < len(args); i += 3 {
		fd, err := syscall.Open(args[i], syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			say("race: open %s: %v", args[i], err)
			return 1
		}
		pairs = append(pairs, pair{args[i], fd, args[i+1], args[i+2]})
	}
	stop := args[1] + "/stop"
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := cstr(p.a), cstr(p.b)
			n := 0
			var first syscall.Errno
			for ; ; n++ {
				if n%64 == 0 {
					var st syscall.Stat_t
					if time.Now().After(deadline) || syscall.Stat(stop, &st) == nil {
						break
					}
				}
				_, _, e := syscall.Syscall6(sysRenameat2, uintptr(p.fd), ptr(a), uintptr(p.fd), ptr(b), renameExchange, 0)
				if e != 0 && first == 0 {
					first = e
				}
			}
			say("race %s %s %s exchanges=%d first-error=%s", p.dir, p.a, p.b, n, errnoName(first))
		}()
	}
	// The test waits for this file before it starts its victims.
	if fd, err := syscall.Open(args[1]+"/ready", syscall.O_WRONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o644); err == nil {
		syscall.Close(fd)
	}
	wg.Wait()
	return 0
}

func doIDs() int {
	var r, e, s uint32
	syscall.RawSyscall(sysGetresuid, ptr(&r), ptr(&e), ptr(&s))
	capEff := "?"
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
				capEff = strings.TrimSpace(v)
			}
		}
	}
	say("ids %d %d %d %s", r, e, s, capEff)
	return 0
}

func main() {
	if len(os.Args) < 2 {
		say("usage: try call|inject|race|ids ...")
		os.Exit(2)
	}
	var rc int
	switch os.Args[1] {
	case "call":
		rc = doCall(os.Args[2:])
	case "inject":
		rc = doInject(os.Args[2:])
	case "race":
		rc = doRace(os.Args[2:])
	case "ids":
		rc = doIDs()
	default:
		say("unknown verb %q", os.Args[1])
		rc = 2
	}
	os.Exit(rc)
}
