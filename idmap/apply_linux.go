package idmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// stderrCap bounds how much of a helper's stderr is kept for the error.
const stderrCap = 4 << 10

// Helpers are the absolute paths of the setuid helpers from shadow's
// uidmap package.
type Helpers struct{ NewUIDMap, NewGIDMap string }

// HelperMissingError says a helper is in none of the searched directories.
type HelperMissingError struct {
	Name     string   // "newuidmap" or "newgidmap"
	Searched []string // the absolute directories of PATH, in order
}

func (e *HelperMissingError) Error() string {
	if len(e.Searched) == 0 {
		return fmt.Sprintf("%s not found: no absolute directory in PATH", e.Name)
	}
	return fmt.Sprintf("%s not found in %s", e.Name, strings.Join(e.Searched, ":"))
}

// HelperNotPrivilegedError says a helper exists but could not write a map
// for us: it is neither setuid root nor carries file capabilities, or it
// does but lives on a file system mounted nosuid, where the kernel ignores
// both (mount(8), nosuid).
type HelperNotPrivilegedError struct {
	Path   string
	NoSUID bool // the file system holding Path is mounted nosuid
}

func (e *HelperNotPrivilegedError) Error() string {
	if e.NoSUID {
		return fmt.Sprintf("%s: on a file system mounted nosuid", e.Path)
	}
	return fmt.Sprintf("%s: not setuid root and no file capabilities", e.Path)
}

// HelperError is a helper run that failed.
type HelperError struct {
	Path     string   // absolute path of the helper
	Args     []string // its arguments: PID INSIDE OUTSIDE COUNT ...
	ExitCode int      // -1 when it did not exit on its own
	Stderr   string   // what it wrote to stderr, at most 4 KiB
	Err      error    // the exit status or signal, the start failure, or the context's error
}

func (e *HelperError) Error() string {
	var b strings.Builder
	b.WriteString(filepath.Base(e.Path))
	for _, a := range e.Args {
		b.WriteString(" ")
		b.WriteString(a)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	} else if e.ExitCode >= 0 {
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(s, "\n", "; "))
	}
	return b.String()
}

func (e *HelperError) Unwrap() error { return e.Err }

// FindHelpers looks newuidmap and newgidmap up in the absolute directories
// of pathEnv and checks that each can do its job: a regular file that is
// setuid root or carries a security.capability xattr (Fedora and others
// ship them with file capabilities instead of the setuid bit). When a
// directory holds an unprivileged copy, later directories are still
// searched; only if no privileged one is found is the first copy reported
// as a *HelperNotPrivilegedError. A helper found nowhere is a
// *HelperMissingError. On error the returned Helpers holds whichever
// helper was found usable.
func FindHelpers(pathEnv string) (Helpers, error) {
	var h Helpers
	var errs []error
	for _, k := range []Kind{UID, GID} {
		p, err := findHelper(pathEnv, k.Helper())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if k == UID {
			h.NewUIDMap = p
		} else {
			h.NewGIDMap = p
		}
	}
	if len(errs) > 0 {
		return h, errs[0]
	}
	return h, nil
}

func findHelper(pathEnv, name string) (string, error) {
	dirs := pathDirs(pathEnv)
	var first *HelperNotPrivilegedError
	for _, d := range dirs {
		p := filepath.Join(d, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		ok, nosuid := privileged(p, fi)
		if ok {
			return p, nil
		}
		if first == nil {
			first = &HelperNotPrivilegedError{Path: p, NoSUID: nosuid}
		}
	}
	if first != nil {
		return "", first
	}
	return "", &HelperMissingError{Name: name, Searched: dirs}
}

// privileged reports whether executing p gains the power to write a
// multi-range map: setuid with owner root, or file capabilities, on a file
// system not mounted nosuid (the kernel ignores both there). Which
// capabilities the xattr holds is left to the helper to find out. nosuid
// is true when the mount is what takes the privilege away.
func privileged(p string, fi os.FileInfo) (ok, nosuid bool) {
	setuidRoot := false
	if fi.Mode()&os.ModeSetuid != 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
			setuidRoot = true
		}
	}
	if !setuidRoot {
		n, err := unix.Getxattr(p, "security.capability", nil)
		if err != nil || n == 0 {
			return false, false
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err == nil && st.Flags&unix.ST_NOSUID != 0 {
		return false, true
	}
	return true, false
}

// Apply writes the maps of process pid's user namespace by running
// newuidmap, then newgidmap (both run even when the first fails, so the
// error names every problem). Each runs by its absolute path with only helperEnv, stdin
// from /dev/null, stdout discarded and stderr kept for the error. A failed
// run is a *HelperError; when both fail, their errors are joined with
// errors.Join, uid first. Cancelling ctx kills the helpers.
//
// Preconditions: pid has been cloned into a new user namespace whose maps
// are still unwritten, and it waits for us.
func Apply(ctx context.Context, pid int, uids, gids []specs.LinuxIDMapping, h Helpers) error {
	if pid <= 0 {
		return fmt.Errorf("apply id maps: invalid pid %d", pid)
	}
	for _, c := range []struct {
		kind Kind
		path string
		ms   []specs.LinuxIDMapping
	}{{UID, h.NewUIDMap, uids}, {GID, h.NewGIDMap, gids}} {
		if !filepath.IsAbs(c.path) {
			return fmt.Errorf("apply %s map: %s path %q is not absolute", c.kind, c.kind.Helper(), c.path)
		}
		if len(c.ms) == 0 {
			return fmt.Errorf("apply %s map: no mappings", c.kind)
		}
	}
	var uidErr, gidErr error
	// One after the other: run at once they take as long (10.5 ms for the
	// pair against an idle target here, they serialise inside), and on two
	// cores they then also crowd the child's runtime start; sequential
	// runs measured 3-6 ms faster per sandbox.
	uidErr = runHelper(ctx, h.NewUIDMap, pid, uids)
	gidErr = runHelper(ctx, h.NewGIDMap, pid, gids)
	switch {
	case uidErr != nil && gidErr != nil:
		return errors.Join(uidErr, gidErr)
	case uidErr != nil:
		return uidErr
	}
	return gidErr
}

// helperArgs renders "PID INSIDE OUTSIDE COUNT ...", newuidmap(1)'s order.
func helperArgs(pid int, ms []specs.LinuxIDMapping) []string {
	args := make([]string, 0, 1+3*len(ms))
	args = append(args, strconv.Itoa(pid))
	for _, m := range ms {
		args = append(args,
			strconv.FormatUint(uint64(m.ContainerID), 10),
			strconv.FormatUint(uint64(m.HostID), 10),
			strconv.FormatUint(uint64(m.Size), 10))
	}
	return args
}

func runHelper(ctx context.Context, path string, pid int, ms []specs.LinuxIDMapping) error {
	args := helperArgs(pid, ms)
	he := &HelperError{Path: path, Args: args, ExitCode: -1}
	// syscall.ForkExec rather than os/exec: this runs on every sandbox
	// start, and os/exec's extra pipes, goroutines and pidfd probe cost
	// about 2 ms per pair of helpers here.
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		he.Err = err
		return he
	}
	defer unix.Close(null)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		he.Err = err
		return he
	}
	child, err := syscall.ForkExec(path, append([]string{filepath.Base(path)}, args...), &syscall.ProcAttr{
		Env:   helperEnv,
		Files: []uintptr{uintptr(null), uintptr(null), uintptr(p[1])},
	})
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		he.Err = err
		return he
	}
	stderrc := make(chan string, 1)
	go func() {
		f := os.NewFile(uintptr(p[0]), "stderr")
		defer f.Close()
		var buf bytes.Buffer
		io.Copy(&limitedBuffer{buf: &buf, max: stderrCap}, f)
		stderrc <- buf.String()
	}()
	waitc := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(child, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		waitc <- ws
	}()
	var ws unix.WaitStatus
	select {
	case ws = <-waitc:
	case <-ctx.Done():
		unix.Kill(child, unix.SIGKILL)
		ws = <-waitc
		he.Err = ctx.Err()
	}
	select {
	case he.Stderr = <-stderrc:
	case <-time.After(time.Second):
		// A grandchild kept stderr open; the helper itself is gone.
	}
	if he.Err != nil {
		return he
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		he.ExitCode = ws.ExitStatus()
		he.Err = fmt.Errorf("exit status %d", he.ExitCode)
	default:
		he.Err = fmt.Errorf("killed by %v", ws.Signal())
	}
	return he
}

// Decision is the id-mapping choice of one run, with the facts behind it.
type Decision struct {
	// Full is true when the subordinate ranges can be mapped through the
	// helpers.
	Full             bool
	Helpers          Helpers
	SubUIDs, SubGIDs []Range
	// UIDs and GIDs are keep-id maps over the ranges when Full, else
	// single-id maps.
	UIDs, GIDs []specs.LinuxIDMapping
	// Reason says why Full is false: the first of a *HelperMissingError,
	// *HelperNotPrivilegedError, *NoRangeError, *ParseError or a read
	// error, checked in that order (uid before gid).
	Reason error
}

// Decide looks up the helpers on pathEnv and the user's uid and gid
// ranges, and plans keep-id maps from them. It never fails: what is
// missing goes into Reason and the maps fall back to single-id maps, for
// the caller to report or to refuse when the user asked for a full map.
func Decide(pathEnv, user string, uid, gid uint32) Decision {
	return decide(pathEnv, UID.File(), GID.File(), user, uid, gid)
}

func decide(pathEnv, subuid, subgid, user string, uid, gid uint32) Decision {
	var d Decision
	var errs []error
	var err error
	if d.Helpers, err = FindHelpers(pathEnv); err != nil {
		errs = append(errs, err)
	}
	if d.SubUIDs, _, err = lookupSubIDs(UID, subuid, pathEnv, user, uid); err != nil {
		errs = append(errs, err)
	}
	if d.SubGIDs, _, err = lookupSubIDs(GID, subgid, pathEnv, user, gid); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		d.Reason = errs[0]
		d.UIDs, d.GIDs = PlanSingle(uid), PlanSingle(gid)
		return d
	}
	d.Full = true
	d.UIDs, d.GIDs = PlanKeepID(uid, d.SubUIDs), PlanKeepID(gid, d.SubGIDs)
	return d
}
