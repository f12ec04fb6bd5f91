package storeclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/idmap"
	"sandbox/rundir"
	"sandbox/userns"
)

// HelperName is the store helper's file name, looked up next to the
// running binary.
const HelperName = "sandbox-store"

// MissingError is a store helper that is not where it must be.
type MissingError struct {
	Path string // where it was looked for
	Err  error
}

func (e *MissingError) Error() string {
	return HelperName + " not found at " + e.Path + ": " + e.Err.Error()
}
func (e *MissingError) Unwrap() error { return e.Err }

// Find returns the path of sandbox-store in the directory of the running
// executable (dirname of /proc/self/exe): the two are built and installed
// together, and a helper found anywhere else could be another version.
func Find() (string, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", &MissingError{Path: HelperName, Err: err}
	}
	return findIn(filepath.Dir(exe))
}

func findIn(dir string) (string, error) {
	p := filepath.Join(dir, HelperName)
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return "", &MissingError{Path: p, Err: err}
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return "", &MissingError{Path: p, Err: errors.New("not an executable file")}
	}
	return p, nil
}

// DefaultRoot is where images live unless --root says otherwise:
// $XDG_DATA_HOME/sandbox/storage, or ~/.local/share/sandbox/storage.
func DefaultRoot(xdgDataHome, home string) (string, error) {
	if filepath.IsAbs(xdgDataHome) {
		return filepath.Join(xdgDataHome, "sandbox", "storage"), nil
	}
	if !filepath.IsAbs(home) {
		return "", errors.New("cannot place the image store: neither XDG_DATA_HOME nor HOME is an absolute path")
	}
	return filepath.Join(home, ".local", "share", "sandbox", "storage"), nil
}

// DefaultRunRoot is the store's run root unless --runroot says otherwise:
// "storage" in the private run-time directory (rundir), which is checked
// (and created) here so that nobody else can have made it first.
func DefaultRunRoot(uid int, xdgRuntimeDir string) (string, error) {
	dir := rundir.Path(uid, xdgRuntimeDir)
	f, err := rundir.Open(dir, uid)
	if err != nil {
		return "", err
	}
	f.Close()
	return filepath.Join(dir, "storage"), nil
}

// Config says how to run the helper.
type Config struct {
	Bin           string // the helper; "" means Find()
	Root, RunRoot string // the store; "" means the defaults
	Quiet, Debug  bool
	// Dir is the helper's working directory (relative paths of load,
	// save and import resolve against it); "" means ours.
	Dir string
	// Stdin feeds the helper's stdin (login's password); nil means
	// /dev/null. Stderr receives its progress and debug log.
	Stdin, Stderr *os.File
	// User, UID and GID are the caller; PathEnv is searched for
	// newuidmap and newgidmap.
	User     string
	UID, GID uint32
	PathEnv  string
	// Decision overrides idmap.Decide, for tests.
	Decision *idmap.Decision
	Log      *slog.Logger
}

// Mapping is the id map the helper got.
type Mapping struct {
	Full       bool
	UIDs, GIDs []specs.LinuxIDMapping
	// Reason says why the map is not Full: ownership in the store is
	// collapsed onto the caller.
	Reason error
}

// Error is the helper's answer to a failed command; Kind is one of those
// cmd/sandbox-store's answer.go classifies.
type Error struct {
	Kind     string   `json:"kind"`
	Message  string   `json:"message"`
	Ref      string   `json:"ref,omitempty"`
	Layer    string   `json:"layer,omitempty"`
	Entry    string   `json:"entry,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Expected string   `json:"expected,omitempty"`
	Actual   string   `json:"actual,omitempty"`
	Path     string   `json:"path,omitempty"`
	Registry string   `json:"registry,omitempty"`
	Cause    string   `json:"cause,omitempty"`
	Tried    []string `json:"tried,omitempty"`
	// Code is the helper's exit status.
	Code int `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// ExitError is a helper that ended without an answer: killed, or crashed.
type ExitError struct {
	Status syscall.WaitStatus
	Stdout string // whatever it wrote, at most 4 KiB
}

func (e *ExitError) Error() string {
	what := fmt.Sprintf("exited with status %d", e.Status.ExitStatus())
	if e.Status.Signaled() {
		what = "killed by " + e.Status.Signal().String()
	}
	return HelperName + " " + what + " without an answer"
}

// SpawnError is a helper that could not be started in its namespaces.
type SpawnError struct{ Err error }

func (e *SpawnError) Error() string { return "start " + HelperName + ": " + e.Err.Error() }
func (e *SpawnError) Unwrap() error { return e.Err }

// MapError is newuidmap or newgidmap failing on the helper.
type MapError struct{ Err error }

func (e *MapError) Error() string { return "map ids for " + HelperName + ": " + e.Err.Error() }
func (e *MapError) Unwrap() error { return e.Err }

// maxAnswer bounds the helper's stdout.
const maxAnswer = 64 << 20

// Plan decides the helper's map: the full root map when newuidmap,
// newgidmap and subordinate ranges are there, else the caller alone.
func Plan(d idmap.Decision, uid, gid uint32) Mapping {
	if d.Full {
		return Mapping{Full: true, UIDs: idmap.PlanRoot(uid, d.SubUIDs), GIDs: idmap.PlanRoot(gid, d.SubGIDs)}
	}
	single := func(id uint32) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: 0, HostID: id, Size: 1}}
	}
	return Mapping{UIDs: single(uid), GIDs: single(gid), Reason: d.Reason}
}

// Run runs the helper with args (a command and its arguments) and
// decodes its JSON answer into out (which may be nil). It returns the map
// the helper ran with. A failed command is an *Error; a helper that could
// not start, be mapped or answer is a *MissingError, *SpawnError,
// *MapError or *ExitError. Cancelling ctx kills the helper.
func Run(ctx context.Context, c Config, out any, args ...string) (Mapping, error) {
	bin := c.Bin
	if bin == "" {
		var err error
		if bin, err = Find(); err != nil {
			return Mapping{}, err
		}
	}
	d := c.Decision
	if d == nil {
		dd := idmap.Decide(c.PathEnv, c.User, c.UID, c.GID)
		d = &dd
	}
	m := Plan(*d, c.UID, c.GID)
	argv := []string{HelperName, "--sync-fd=3", "--root", c.Root, "--runroot", c.RunRoot}
	if !m.Full {
		argv = append(argv, "--single-id")
	}
	if c.Quiet {
		argv = append(argv, "-q")
	}
	if c.Debug {
		argv = append(argv, "--debug")
	}
	argv = append(argv, args...)
	stdout, code, err := spawn(ctx, c, bin, argv, m, d.Helpers)
	if err != nil {
		return m, err
	}
	if code.Exited() && code.ExitStatus() != 0 {
		var answer struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal(stdout, &answer) == nil && answer.Error != nil {
			answer.Error.Code = code.ExitStatus()
			return m, answer.Error
		}
	}
	if !code.Exited() || code.ExitStatus() != 0 {
		return m, &ExitError{Status: code, Stdout: string(stdout[:min(len(stdout), 4096)])}
	}
	if out != nil {
		if err := json.Unmarshal(stdout, out); err != nil {
			return m, fmt.Errorf("%s answered %q: %w", HelperName, stdout[:min(len(stdout), 200)], err)
		}
	}
	return m, nil
}

// helperEnv is ours plus the variables containers/storage reads to know
// it runs in a rootless user namespace that is already set up (podman
// sets the same in its re-exec'd store process): with them it writes
// whiteouts and opaque markers as user.overlay.* xattrs and mounts with
// userxattr, the layout a podman store has.
func helperEnv(uid, gid uint32) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "_CONTAINERS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"_CONTAINERS_USERNS_CONFIGURED=done",
		"_CONTAINERS_ROOTLESS_UID="+strconv.FormatUint(uint64(uid), 10),
		"_CONTAINERS_ROOTLESS_GID="+strconv.FormatUint(uint64(gid), 10))
}

// setupCaps are raised as ambient capabilities so the helper has them
// after exec, although its uid is still unmapped when it execs and the
// map is written only later by newuidmap: mounting (overlay checks),
// chroot (layer extraction), chown, mknod (whiteouts), setting any mode
// bit and file capabilities, reading and writing files of any owner.
var setupCaps = []uintptr{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH, unix.CAP_FOWNER,
	unix.CAP_FSETID, unix.CAP_MKNOD, unix.CAP_SETFCAP, unix.CAP_SETGID, unix.CAP_SETUID,
	unix.CAP_SYS_ADMIN, unix.CAP_SYS_CHROOT,
}

// spawn starts the helper in its namespaces, writes its maps, lets it go,
// collects its stdout and waits for it.
func spawn(ctx context.Context, c Config, bin string, argv []string, m Mapping, h idmap.Helpers) ([]byte, syscall.WaitStatus, error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var sync, outp [2]int
	if err := unix.Pipe2(sync[:], unix.O_CLOEXEC); err != nil {
		return nil, 0, &SpawnError{Err: err}
	}
	syncR, syncW := os.NewFile(uintptr(sync[0]), "sync-r"), os.NewFile(uintptr(sync[1]), "sync-w")
	defer syncW.Close()
	if err := unix.Pipe2(outp[:], unix.O_CLOEXEC); err != nil {
		syncR.Close()
		return nil, 0, &SpawnError{Err: err}
	}
	outR, outW := os.NewFile(uintptr(outp[0]), "stdout-r"), os.NewFile(uintptr(outp[1]), "stdout-w")
	defer outR.Close()

	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		syncR.Close()
		outW.Close()
		return nil, 0, &SpawnError{Err: err}
	}
	defer null.Close()
	stdin, stderr := c.Stdin, c.Stderr
	if stdin == nil {
		stdin = null
	}
	if stderr == nil {
		stderr = null
	}
	sys := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		// The helper dies with the thread that started it, which stays
		// locked until the helper is reaped (parent-death signals are
		// per thread in Go).
		Pdeathsig:   syscall.SIGKILL,
		AmbientCaps: setupCaps,
	}
	if !m.Full {
		sys.UidMappings = toSyscall(m.UIDs)
		sys.GidMappings = toSyscall(m.GIDs)
		sys.GidMappingsEnableSetgroups = false
	}
	attr := &syscall.ProcAttr{
		Dir:   c.Dir,
		Env:   helperEnv(c.UID, c.GID),
		Files: []uintptr{stdin.Fd(), outW.Fd(), stderr.Fd(), syncR.Fd()},
		Sys:   sys,
	}
	pid, waitc, err := userns.StartLocked(bin, argv, attr)
	syncR.Close()
	outW.Close()
	if err != nil {
		return nil, 0, &SpawnError{Err: err}
	}
	log.Debug("store helper started", "pid", pid, "full map", m.Full)

	outc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(outR, maxAnswer))
		io.Copy(io.Discard, outR)
		outc <- b
	}()
	kill := func() syscall.WaitStatus {
		syscall.Kill(pid, syscall.SIGKILL)
		return <-waitc
	}
	if m.Full {
		if err := idmap.Apply(ctx, pid, m.UIDs, m.GIDs, h); err != nil {
			syncW.Close() // EOF: the helper gives up
			kill()
			return nil, 0, &MapError{Err: err}
		}
	}
	if _, err := syncW.Write([]byte{'g'}); err != nil {
		ws := kill()
		return nil, ws, &SpawnError{Err: fmt.Errorf("helper gone before its maps were written: %w", err)}
	}
	syncW.Close()
	var ws syscall.WaitStatus
	select {
	case ws = <-waitc:
	case <-ctx.Done():
		kill()
		return nil, 0, ctx.Err()
	}
	select {
	case b := <-outc:
		return b, ws, nil
	case <-time.After(5 * time.Second):
		// A grandchild holds the pipe; the helper itself has answered
		// or not, and is gone.
		return nil, ws, &ExitError{Status: ws}
	}
}

func toSyscall(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}
