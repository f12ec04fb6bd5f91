package preflight

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// ProbeCommand is the hidden first argument that makes our binary run
// ProbeMain: "/proc/self/exe __probe overlay DIR". main dispatches it before
// anything else, like the sandbox's own init.
const ProbeCommand = "__probe"

// The mount probe, in the child (its own user and mount namespace, the
// caller mapped to root, cwd DIR, which the parent made and holds lower/,
// upper/, work/, merged/ and lower/file):
//
//	private   mount --make-rprivate /   (nothing we mount reaches the host)
//	tmpfs     mount -t tmpfs on merged, then unmount it
//	overlay   mount -t overlay lowerdir=lower,upperdir=upper,workdir=work
//	          on merged, with userxattr (5.11+), else without it
//	copy-up   append to merged/file, which must then exist in upper/
//
// It prints one line per step it ran to stdout, "STEP ERRNO [DETAIL]",
// ERRNO 0 on success, and stops at the first failure. The parent reads the
// lines back with parseProbeOutput. Relative paths keep the temp
// directory's name (which may hold ',' or ':') out of the mount options.
const (
	stepPrivate = "private"
	stepTmpfs   = "tmpfs"
	stepOverlay = "overlay"
	stepCopyUp  = "copy-up"
)

// MountFacts is what the mount probe found.
type MountFacts struct {
	// Dir is the directory the probe's temporary directory was made in,
	// FSType its file system (the overlay's upper and work directories
	// live there, and whether overlay accepts them depends on it).
	Dir, FSType string
	// Err says why the probe did not run: no temporary directory, or the
	// clone, the id map or the exec failed. The steps are then unknown.
	Err error
	// Mount is the result of mounting a tmpfs inside the user namespace:
	// nil when it worked. It fails on Ubuntu 23.10+ when AppArmor takes
	// the namespace's capabilities away.
	Mount error
	// Overlay is the result of mounting overlayfs and writing through it
	// (nil when both worked); OverlayOptions the extra options it took.
	Overlay        error
	OverlayOptions string
	// Ran is false when the probe never reached the mount step.
	Ran bool
}

// StepError is a step of the mount probe that failed in the child.
type StepError struct {
	Step   string // "private", "tmpfs", "overlay", "copy-up"
	Errno  syscall.Errno
	Detail string
}

func (e *StepError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s: %s", e.Step, e.Detail, e.Errno.Error())
	}
	return fmt.Sprintf("%s: %s", e.Step, e.Errno.Error())
}

func (e *StepError) Unwrap() error { return e.Errno }

// parseProbeOutput turns the child's lines into m.Mount, m.Overlay and
// m.OverlayOptions. A step the child never reported is an error: the child
// died or wrote something we do not understand.
func parseProbeOutput(out []byte, m *MountFacts) {
	results := map[string]*StepError{}
	details := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(strings.TrimSpace(sc.Text()), " ", 3)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			continue
		}
		detail := ""
		if len(f) == 3 {
			detail = f[2]
		}
		details[f[0]] = detail
		if n == 0 {
			results[f[0]] = nil
		} else {
			results[f[0]] = &StepError{Step: f[0], Errno: syscall.Errno(n), Detail: detail}
		}
	}
	m.Ran = true
	for _, step := range []string{stepPrivate, stepTmpfs, stepOverlay, stepCopyUp} {
		r, reported := results[step]
		var err error
		switch {
		case !reported:
			err = fmt.Errorf("%s: the probe reported no result", step)
		case r != nil:
			err = r
		}
		if err == nil {
			if step == stepOverlay {
				m.OverlayOptions = details[step]
			}
			continue
		}
		if step == stepPrivate || step == stepTmpfs {
			m.Mount, m.Overlay = err, errNotReached
		} else {
			m.Overlay = err
		}
		return
	}
}

// errNotReached marks a step that did not run because an earlier one
// failed.
var errNotReached = errors.New("not tried: mounting in a user namespace failed")
