package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/idmap"
	"sandbox/profiles"
	"sandbox/spec"
	"sandbox/userns"
)

// planRootfs sets in up for a run from the root directory --rootfs names:
// the root is an overlay of it with a throwaway writable layer, inside id 0
// is the caller (and 1, 2, ... the subordinate ranges), and the command
// runs as --user, by default root.
func planRootfs(e *env, f *runFlags, in *profiles.Inputs, name string) (userns.IDMapper, *imageRun, error) {
	dir := f.rootfs
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(in.Cwd, dir)
	}
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return nil, nil, &usageError{msg: fmt.Sprintf("--rootfs %s: %v", f.rootfs, errText(err)), fix: "sandbox run --rootfs DIR ... with a directory holding a root file system"}
	case !fi.IsDir():
		return nil, nil, &usageError{msg: fmt.Sprintf("--rootfs %s: not a directory", f.rootfs), fix: "sandbox run --rootfs DIR ... with a directory holding a root file system"}
	case strings.ContainsAny(dir, ":,"):
		return nil, nil, &usageError{msg: fmt.Sprintf("--rootfs %s: the path holds ':' or ','", f.rootfs), fix: "move or link the directory to a path without them"}
	}
	in.Rootfs = &spec.Rootfs{Lower: []string{dir}, ReadOnly: f.readOnly, Overlay: f.overlay}
	run := &imageRun{}
	if f.overlay == spec.OverlayFuse {
		// fuse-overlayfs runs outside the sandbox: its throwaway layer is
		// a scratch directory beside the image store.
		graph, err := graphRoot(storeFlags{root: f.storeRoot})
		if err != nil {
			return nil, nil, err
		}
		if run.scratch, err = fuseoverlay.NewScratch(graph); err != nil {
			return nil, nil, &storeDirError{What: "a writable layer for fuse-overlayfs", Dir: graph, Err: err}
		}
		in.Rootfs.Upper, in.Rootfs.Work = run.scratch.Upper(), run.scratch.Work()
	}
	fail := func(err error) (userns.IDMapper, *imageRun, error) {
		run.cleanup(e)
		return nil, nil, err
	}
	mapper, err := planRootMap(e, f, in, name)
	if err != nil {
		return fail(err)
	}
	uid, gid, home, err := resolveUser([]string{dir}, f.user)
	if err != nil {
		return fail(err)
	}
	if err := setUser(f, in, uid, gid, home); err != nil {
		return fail(err)
	}
	return mapper, run, nil
}

// setUser makes uid:gid the command's ids, and checks they exist inside.
func setUser(f *runFlags, in *profiles.Inputs, uid, gid uint32, home string) error {
	if in.IDMap == spec.IDMapSingle && (uid != 0 || gid != 0) {
		return &usageError{msg: fmt.Sprintf("user %d:%d needs the subordinate ranges: with a single-id map only root exists inside", uid, gid),
			fix: "sandbox run -u 0 ... (or drop --userns=single; sandbox doctor says what the full map needs)"}
	}
	in.UID, in.GID = uid, gid
	in.ImageEnv = append(in.ImageEnv, "HOME="+home)
	return nil
}

// planRootMap picks the map of a root of its own: inside id 0 is the
// caller and 1.. the subordinate ranges, or the caller's id alone.
func planRootMap(e *env, f *runFlags, in *profiles.Inputs, name string) (userns.IDMapper, error) {
	var mapper userns.IDMapper
	switch f.userns {
	case "auto", "single":
	default:
		return nil, &usageError{msg: fmt.Sprintf("--userns=%s does not apply to a root of its own: inside id 0 is you", f.userns), fix: "sandbox run --userns=auto|single ..."}
	}
	if len(f.uidmap) > 0 || len(f.gidmap) > 0 {
		return nil, &usageError{msg: "--uidmap/--gidmap do not apply to a root of its own yet", fix: "drop them"}
	}
	d := idmap.Decide(os.Getenv("PATH"), name, in.UID, in.GID)
	if d.Full && f.userns == "auto" {
		in.IDMap = spec.IDMapRoot
		in.UIDMappings = idmap.PlanRoot(in.UID, d.SubUIDs)
		in.GIDMappings = idmap.PlanRoot(in.GID, d.SubGIDs)
		mapper = &helperMapper{uids: in.UIDMappings, gids: in.GIDMappings, helpers: d.Helpers}
		e.log.Debug("idmap", "mode", "root", "uids", fmt.Sprint(in.UIDMappings), "gids", fmt.Sprint(in.GIDMappings))
	} else {
		why := "--userns=single"
		if d.Reason != nil {
			why = d.Reason.Error()
		}
		in.IDMap = spec.IDMapSingle
		in.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: in.UID, Size: 1}}
		in.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: in.GID, Size: 1}}
		e.log.Debug("idmap", "mode", "single", "why", why, "note", "files of other owners in the root show as nobody")
	}
	return mapper, nil
}

// resolveUser turns --user (USER[:GROUP], names or ids; "" is root) into
// ids, looking names up in the root's own /etc/passwd and /etc/group: in
// the first of layers (topmost first) that has the file, read through an
// os.Root so its symlinks stay inside that layer.
func resolveUser(layers []string, user string) (uid, gid uint32, home string, err error) {
	if user == "" {
		user = "0"
	}
	u, g, hasGroup := strings.Cut(user, ":")
	bad := func(what, v string) error {
		return &usageError{msg: fmt.Sprintf("--user %s: no %s %q in the root's /etc/%s", user, what, v, map[string]string{"user": "passwd", "group": "group"}[what]), fix: "sandbox run -u UID[:GID] ... with numeric ids"}
	}
	passwd := readColonFile(layers, "etc/passwd")
	home = "/"
	if n, perr := strconv.ParseUint(u, 10, 32); perr == nil {
		uid = uint32(n)
		gid = uid
		for _, f := range passwd {
			if len(f) > 5 && f[2] == u {
				if n, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					gid = uint32(n)
				}
				home = f[5]
				break
			}
		}
		if uid == 0 && home == "/" {
			home = "/root"
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) > 5 && f[0] == u {
				a, aerr := strconv.ParseUint(f[2], 10, 32)
				b, berr := strconv.ParseUint(f[3], 10, 32)
				if aerr == nil && berr == nil {
					uid, gid, home, found = uint32(a), uint32(b), f[5], true
				}
				break
			}
		}
		if !found {
			return 0, 0, "", bad("user", u)
		}
	}
	if hasGroup {
		if n, perr := strconv.ParseUint(g, 10, 32); perr == nil {
			gid = uint32(n)
		} else {
			found := false
			for _, f := range readColonFile(layers, "etc/group") {
				if len(f) > 2 && f[0] == g {
					if n, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						gid, found = uint32(n), true
					}
					break
				}
			}
			if !found {
				return 0, 0, "", bad("group", g)
			}
		}
	}
	return uid, gid, home, nil
}

// readColonFile reads a passwd-style file from the first of layers that
// has it, split into fields; a missing or unreadable file is empty.
func readColonFile(layers []string, name string) [][]string {
	var fh *os.File
	for _, dir := range layers {
		root, err := os.OpenRoot(dir)
		if err != nil {
			continue
		}
		fh, err = root.Open(name)
		root.Close()
		if err == nil {
			break
		}
	}
	if fh == nil {
		return nil
	}
	defer fh.Close()
	var out [][]string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, strings.Split(line, ":"))
		}
	}
	return out
}
