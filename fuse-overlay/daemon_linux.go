package fuseoverlay

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/spec"
)

// Program and Nsenter are the helpers Start runs, looked up in PATH.
const (
	Program = "fuse-overlayfs"
	Nsenter = "nsenter"
)

// Daemon is a fuse-overlayfs process serving one sandbox's root.
type Daemon struct {
	cmd    *exec.Cmd
	stderr *tail
	done   chan struct{}
	err    error // how it ended; set before done closes
	// userns keeps the sandbox's user namespace for removing a scratch
	// layer after the sandbox (Scratch.Remove); Close releases it.
	userns *os.File
	// Confined: the daemon runs under Landlock (StartConfined); false on
	// a kernel without it.
	Confined bool
}

// Options returns fuse-overlayfs's -o value for r: the layers, topmost
// first, then the writable layer. spec.Validate keeps ':' and ',' out of
// the paths.
func Options(r *spec.Rootfs) string {
	return "lowerdir=" + strings.Join(r.Lower, ":") + ",upperdir=" + r.Upper + ",workdir=" + r.Work
}

// Start runs fuse-overlayfs for r on the FUSE device dev, mounted by the
// sandbox's init, inside the user namespace userns (an nsfs fd of the
// sandbox's). The daemon needs to be root of that namespace, which the
// caller is for an image (root map 0 = the caller). dev and userns may be
// closed when Start returns.
func Start(r *spec.Rootfs, dev, userns *os.File) (*Daemon, error) {
	if r.Upper == "" || r.Work == "" {
		return nil, errors.New("fuse-overlayfs needs an upper and a work directory")
	}
	prog, err := exec.LookPath(Program)
	if err != nil {
		return nil, &MissingError{Program: Program, Err: err}
	}
	nsenter, err := exec.LookPath(Nsenter)
	if err != nil {
		return nil, &MissingError{Program: Nsenter, Err: err}
	}
	// fd 3: the user namespace, fd 4: the device. --preserve-credentials:
	// the caller's uid is 0 inside, and a gid map written without
	// newgidmap forbids setgroups, which nsenter would otherwise call.
	cmd := exec.Command(nsenter, "--user=/proc/self/fd/3", "--preserve-credentials", "--",
		prog, "-f", "-o", Options(r), "/dev/fd/4")
	cmd.ExtraFiles = []*os.File{userns, dev}
	ns, err := dup(userns)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cmd: cmd, stderr: &tail{max: 4 << 10}, done: make(chan struct{}), userns: ns}
	cmd.Stderr = d.stderr
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	err = StartConfined(cmd, DaemonRules(r), func(err error) {
		if err != nil {
			err = &ExitError{Err: err, Stderr: d.stderr.String()}
		}
		d.err = err
		close(d.done)
	})
	d.Confined = err == nil
	if err != nil && !errors.Is(err, ErrNoLandlock) {
		ns.Close()
		return nil, fmt.Errorf("start %s: %w", Program, err)
	}
	return d, nil
}

// Pid is the daemon's process id (in the caller's PID namespace).
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Wait waits for the daemon to exit after its sandbox ended (the kernel
// aborts the connection when the mount goes), killing it after timeout.
// It returns the daemon's failure, if any.
func (d *Daemon) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.done:
	case <-t.C:
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("%s did not exit within %s of its sandbox; killed", Program, timeout)
	}
	return d.err
}

// Close releases what the daemon kept of its sandbox (the user
// namespace), after Wait and any Scratch.Remove.
func (d *Daemon) Close() {
	if d.userns != nil {
		d.userns.Close()
		d.userns = nil
	}
}

func dup(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// MissingError is a helper program not found in PATH.
type MissingError struct {
	Program string
	Err     error
}

func (e *MissingError) Error() string { return e.Program + " not found: " + e.Err.Error() }
func (e *MissingError) Unwrap() error { return e.Err }

// ExitError is the daemon ending with a failure; Stderr is the end of
// what it printed.
type ExitError struct {
	Err    error
	Stderr string
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return Program + ": " + e.Err.Error()
	}
	return Program + ": " + e.Err.Error() + ": " + e.Stderr
}
func (e *ExitError) Unwrap() error { return e.Err }

// ignored are lines fuse-overlayfs prints for options it sets on mounts it
// makes itself; the sandbox's init made this one.
var ignored = []string{"unknown argument ignored: lazytime"}

// tail keeps the last max bytes written, without the ignored lines.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, l := range strings.Split(string(t.b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.Contains(ignored, l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
