package fuseoverlay

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Scratch is the writable layer of a fuse-overlayfs root that keeps
// nothing (run --rm, --rootfs): BASE/sandbox-scratch/run-XXXX/{upper,work}
// on the host, where the daemon can write it. The run holds run-XXXX.lock
// (flock) until it removes the directory; a directory whose lock is free
// belongs to a run killed before it could, and the next run removes it.
//
// Files in it belong to the ids of the sandbox (subordinate ids), which
// the caller cannot delete from the host: Remove deletes through the
// sandbox's user namespace, kept by the daemon.
type Scratch struct {
	Dir   string
	lock  *os.File
	stale []string // directories of dead runs, removed with this one
}

// Upper and Work are the overlay's directories in s.
func (s *Scratch) Upper() string { return filepath.Join(s.Dir, "upper") }
func (s *Scratch) Work() string  { return filepath.Join(s.Dir, "work") }

// NewScratch makes a scratch layer under base, which must be on a file
// system fuse-overlayfs can use as upper (the image store's is).
func NewScratch(base string) (*Scratch, error) {
	dir := filepath.Join(base, "sandbox-scratch")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Making a directory with its lock and finding stale ones happen
	// under one lock of dir: a run never sees another's directory before
	// its lock is held.
	guard, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer guard.Close()
	if err := unix.Flock(int(guard.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock %s: %w", guard.Name(), err)
	}
	s := &Scratch{stale: staleScratch(dir)}
	if s.Dir, err = os.MkdirTemp(dir, "run-"); err != nil {
		return nil, err
	}
	if s.lock, err = os.OpenFile(s.Dir+".lock", os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err == nil {
		err = unix.Flock(int(s.lock.Fd()), unix.LOCK_EX)
	}
	for _, d := range []string{s.Upper(), s.Work()} {
		if err == nil {
			err = os.Mkdir(d, 0o755)
		}
	}
	if err != nil {
		s.Remove(nil)
		return nil, err
	}
	return s, nil
}

// staleScratch lists the directories under dir whose lock no run holds.
func staleScratch(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "run-") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			// No lock file: its run died between making the two (under
			// the guard, so not running now).
			out = append(out, filepath.Join(dir, name))
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			out = append(out, filepath.Join(dir, name))
		}
		f.Close()
	}
	return out
}

// Remove deletes s and the stale directories found with it: through the
// sandbox's user namespace when d (the daemon that served s, already
// ended) is given, else as the caller, which suffices when no sandbox
// wrote to them.
func (s *Scratch) Remove(d *Daemon) error {
	if s == nil {
		return nil
	}
	dirs := append([]string{s.Dir}, s.stale...)
	// As the caller first: a run that wrote nothing, or only as the
	// caller (root inside), needs no process started for it.
	var left []string
	for _, dir := range dirs {
		if os.RemoveAll(dir) != nil {
			left = append(left, dir)
		}
	}
	var err error
	if len(left) > 0 && d != nil && d.userns != nil {
		err = d.removeAll(left)
	} else if len(left) > 0 {
		err = fmt.Errorf("remove %s: files of other ids inside, and no sandbox left to remove them through", strings.Join(left, " "))
	}
	for _, dir := range dirs {
		if _, serr := os.Lstat(dir); serr == nil {
			continue
		}
		os.Remove(dir + ".lock")
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

// removeAll runs rm -rf on dirs as root of the daemon's user namespace,
// which the daemon's kept fd holds alive after the sandbox is gone.
func (d *Daemon) removeAll(dirs []string) error {
	nsenter, err := exec.LookPath(Nsenter)
	if err != nil {
		return &MissingError{Program: Nsenter, Err: err}
	}
	args := append([]string{"--user=/proc/self/fd/3", "--preserve-credentials", "--", "rm", "-rf", "--one-file-system", "--"}, dirs...)
	cmd := exec.Command(nsenter, args...)
	cmd.ExtraFiles = []*os.File{d.userns}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("remove %s: %v: %s", strings.Join(dirs, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
