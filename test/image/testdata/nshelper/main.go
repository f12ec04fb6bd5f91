// Command nshelper does, for the image tests, what needs the store's user
// namespace (inside 0 the caller, 1..N the subordinate ids): it is started
// by storeclient exactly as sandbox-store is, and speaks the same
// contract (global flags, wait on --sync-fd, one JSON answer on stdout).
//
//	merge LOWER[:LOWER...] UPPER WORK   mount an overlay as the run path
//	                                     will (userxattr), print its tree
//	rmtree DIR                           remove DIR, whatever its owners
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// File is one path of the merged tree, with ids as seen inside.
type File struct {
	Path     string `json:"path"`
	Kind     string `json:"kind"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Mode     uint32 `json:"mode"` // permission and setuid/setgid/sticky bits
	Data     string `json:"data,omitempty"`
	Linkname string `json:"linkname,omitempty"`
	Ino      uint64 `json:"ino"`
	Nlink    uint64 `json:"nlink"`
}

func main() {
	args := os.Args[1:]
	// Skip the store flags storeclient passes; wait on the sync fd.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		switch a {
		case "--root", "--runroot":
			args = args[1:]
		case "--sync-fd=3":
			b := make([]byte, 1)
			if n, _ := os.NewFile(3, "sync").Read(b); n != 1 {
				os.Exit(1)
			}
		}
	}
	if err := run(args); err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"error": map[string]string{"kind": "internal", "message": err.Error()}})
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	switch args[0] {
	case "rmtree":
		if len(args) != 2 {
			return errors.New("rmtree DIR")
		}
		return os.RemoveAll(args[1])
	case "merge":
		if len(args) != 4 {
			return errors.New("merge LOWERS UPPER WORK")
		}
		lowers := strings.Split(args[1], ":")
		slices.Reverse(lowers) // lowerdir lists the top layer first
		mnt, err := os.MkdirTemp("", "merged-")
		if err != nil {
			return err
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", strings.Join(lowers, ":"), args[2], args[3])
		if err := syscall.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
			return fmt.Errorf("mount overlay %s: %w", opts, err)
		}
		defer func() {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			os.Remove(mnt)
		}()
		files, err := tree(mnt)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(files)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func tree(root string) ([]File, error) {
	var out []File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		f := File{Path: rel, UID: int(st.Uid), GID: int(st.Gid), Mode: st.Mode & 0o7777, Ino: st.Ino, Nlink: uint64(st.Nlink)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			f.Kind = "dir"
		case syscall.S_IFREG:
			f.Kind = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f.Data = string(b)
		case syscall.S_IFLNK:
			f.Kind = "symlink"
			f.Linkname, _ = os.Readlink(p)
		case syscall.S_IFIFO:
			f.Kind = "fifo"
		case syscall.S_IFCHR:
			f.Kind = "char"
		default:
			f.Kind = "other"
		}
		out = append(out, f)
		return nil
	})
	return out, err
}
