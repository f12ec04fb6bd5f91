package userns

import (
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// relay copies between the caller's terminal and the sandbox's pty master.
type relay struct {
	master  *os.File
	sizeFd  int // the caller's terminal whose size is followed, or -1
	restore func()
	outDone chan struct{}
}

// startRelay puts the caller's terminal in raw mode (when stdin is one and
// input is attached), copies input and output, and follows the window size.
func startRelay(master, stdin, stdout *os.File, interactive bool) *relay {
	r := &relay{master: master, sizeFd: -1, restore: func() {}, outDone: make(chan struct{})}
	switch {
	case stdin != nil && term.IsTerminal(int(stdin.Fd())):
		r.sizeFd = int(stdin.Fd())
	case term.IsTerminal(int(stdout.Fd())):
		r.sizeFd = int(stdout.Fd())
	}
	if interactive && stdin != nil && term.IsTerminal(int(stdin.Fd())) {
		if old, err := term.MakeRaw(int(stdin.Fd())); err == nil {
			fd := int(stdin.Fd())
			r.restore = func() { term.Restore(fd, old) }
		}
	}
	r.resize()
	go func() {
		defer close(r.outDone)
		// Reading the master ends with EIO once every slave fd is closed,
		// that is once the sandbox's PID namespace is gone.
		io.Copy(stdout, master)
	}()
	if interactive && stdin != nil {
		go func() {
			io.Copy(master, stdin)
			// End of input: send the terminal's end-of-file character.
			master.Write([]byte{4})
		}()
	}
	return r
}

func (r *relay) resize() {
	if r.sizeFd < 0 {
		return
	}
	ws, err := unix.IoctlGetWinsize(r.sizeFd, unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	unix.IoctlSetWinsize(int(r.master.Fd()), unix.TIOCSWINSZ, ws)
}

// finish waits (bounded) for the remaining output after the child exited.
func (r *relay) finish() {
	select {
	case <-r.outDone:
	case <-time.After(2 * time.Second):
	}
	r.stop()
}

func (r *relay) stop() {
	r.restore()
	r.restore = func() {}
	r.master.Close()
}
