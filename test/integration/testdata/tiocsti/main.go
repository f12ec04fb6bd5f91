// Command tiocsti tries to push characters into the input queue of the
// terminal behind each of its fds 0-2 with ioctl(TIOCSTI) and prints, per
// fd, "fdN: ok" or "fdN: ERRNO". It never prints the characters it pushes,
// so a test that finds them in the terminal output knows they were injected.
//
// It is its own module so that building it needs nothing but the standard
// library, also for a user without the main module's cache.
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// payload is pushed one byte at a time. Built at run time so that the
// string never appears literally in anything this program prints.
func payload() []byte {
	return []byte(string([]byte{'I', 'N', 'J', '3', 'C', 'T', '3', 'D'}) + "\n")
}

var names = map[syscall.Errno]string{
	syscall.EPERM:  "EPERM",
	syscall.EIO:    "EIO",
	syscall.ENOTTY: "ENOTTY",
	syscall.EBADF:  "EBADF",
	syscall.EINVAL: "EINVAL",
	syscall.EACCES: "EACCES",
	syscall.ENOSYS: "ENOSYS",
}

func main() {
	for fd := 0; fd <= 2; fd++ {
		var failed syscall.Errno
		for _, c := range payload() {
			b := c
			_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSTI, uintptr(unsafe.Pointer(&b)))
			if e != 0 {
				failed = e
				break
			}
		}
		res := "ok"
		if failed != 0 {
			res = names[failed]
			if res == "" {
				res = fmt.Sprintf("errno %d", int(failed))
			}
		}
		fmt.Fprintf(os.Stdout, "fd%d: %s\n", fd, res)
	}
}
