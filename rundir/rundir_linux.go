package rundir

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// DirError says why a private directory cannot be trusted.
type DirError struct {
	Path   string
	Reason string
}

func (e *DirError) Error() string { return "private directory " + e.Path + ": " + e.Reason }

// Path is uid's private run-time directory: $XDG_RUNTIME_DIR/sandbox,
// or /tmp/sandbox-UID when XDG_RUNTIME_DIR is unset or not absolute.
func Path(uid int, xdgRuntimeDir string) string {
	if filepath.IsAbs(xdgRuntimeDir) {
		return filepath.Join(xdgRuntimeDir, "sandbox")
	}
	return "/tmp/sandbox-" + strconv.Itoa(uid)
}

// Open opens (creating it if missing) the directory at path and checks that nobody else could have made or can change it:
// not a symlink, a directory, owned by uid, no access for group or others.
// Everything after goes through the returned fd, so swapping the path
// later changes nothing.
func Open(path string, uid int) (*os.File, error) {
	if err := unix.Mkdir(path, 0o700); err != nil && err != unix.EEXIST {
		return nil, &DirError{Path: path, Reason: "cannot create it: " + err.Error()}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return nil, &DirError{Path: path, Reason: "not a directory (a symlink or a file is in its place)"}
		}
		return nil, &DirError{Path: path, Reason: err.Error()}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &DirError{Path: path, Reason: err.Error()}
	}
	switch {
	case int(st.Uid) != uid:
		unix.Close(fd)
		return nil, &DirError{Path: path, Reason: fmt.Sprintf("owned by uid %d, not %d", st.Uid, uid)}
	case st.Mode&0o077 != 0:
		unix.Close(fd)
		return nil, &DirError{Path: path, Reason: fmt.Sprintf("mode %04o lets others in (want 0700)", st.Mode&0o7777)}
	}
	return os.NewFile(uintptr(fd), path), nil
}
