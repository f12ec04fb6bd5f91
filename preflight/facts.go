package preflight

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"sandbox/idmap"
)

// Options say whom and where to probe for.
type Options struct {
	// Root is the host's "/"; nil means os.DirFS("/").
	Root fs.FS
	// PathEnv is the PATH the helpers are looked up in.
	PathEnv string
	// RuntimeDir is $XDG_RUNTIME_DIR ("" when unset).
	RuntimeDir string
	// User, UID and GID are the user sandbox runs as.
	User     string
	UID, GID uint32
	// Executable is the absolute path of the sandbox binary, named in the
	// AppArmor profile a fix writes. The probes re-exec /proc/self/exe.
	Executable string
	// ProbeDir is where the mount probe makes its temporary directory;
	// "" means os.TempDir(). Point it at the image store's file system:
	// whether overlayfs accepts an upper directory depends on it.
	ProbeDir string
	// Log gets a debug line per probe with its duration; nil discards.
	Log *slog.Logger
}

// SubIDFacts are the subordinate ranges of one kind, from
// idmap.LookupSubIDs.
type SubIDFacts struct {
	Ranges []idmap.Range
	Source string // the file, or "getsubids"
	Err    error  // *idmap.NoRangeError, *idmap.ParseError, a read error
}

// Total is the number of ids in the ranges.
func (s SubIDFacts) Total() uint64 {
	var n uint64
	for _, r := range s.Ranges {
		n += uint64(r.Count)
	}
	return n
}

// Facts are everything the probes found. Gather fills them; Evaluate
// judges them.
type Facts struct {
	User       string
	UID, GID   uint32
	Executable string
	Distro     Distro
	Kernel     string // uname -r

	Userns UsernsFacts
	// CloneErr is why no user namespace could be created (a *CloneError),
	// nil when one was.
	CloneErr error
	Mounts   MountFacts

	FuseErr error // opening /dev/fuse; nil when it opened
	// Tools found on PATH: fuse-overlayfs, nsenter, pasta, slirp4netns.
	FuseOverlayfs, Nsenter, Pasta, Slirp4netns Tool

	Helpers    idmap.Helpers
	HelpersErr error // *idmap.HelperMissingError, *idmap.HelperNotPrivilegedError
	SubUIDs    SubIDFacts
	SubGIDs    SubIDFacts
	// FreeSubID starts a block of SubIDBlockSize ids that nobody has in
	// /etc/subuid or /etc/subgid, for the usermod fix.
	FreeSubID uint32

	Cgroup CgroupFacts
	// CgroupFSType is the file system at /sys/fs/cgroup by statfs(2):
	// "cgroup2" when unified, "tmpfs" for v1 or hybrid.
	CgroupFSType string
	Systemd      SystemdFacts
	RuntimeDir   RuntimeDirFacts
}

// Gather runs every probe. It writes nothing outside a temporary
// directory it removes again, and never fails: what a probe could not find
// out is recorded in the Facts as an error. The probes that start
// processes run concurrently.
func Gather(ctx context.Context, o Options) *Facts {
	fsys := o.Root
	if fsys == nil {
		fsys = os.DirFS("/")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Facts{
		User:       o.User,
		UID:        o.UID,
		GID:        o.GID,
		Executable: o.Executable,
		Distro:     ReadDistro(fsys),
		Kernel:     KernelRelease(),
		Userns:     ReadUsernsFacts(fsys),
		FreeSubID:  NextFreeSubIDs(fsys),
		Systemd:    ReadSystemd(fsys, o.RuntimeDir, o.User),
		RuntimeDir: ReadRuntimeDir(fsys, o.RuntimeDir),
	}
	f.CgroupFSType = FSType(cgroupRoot)
	f.Cgroup = ReadCgroupFacts(fsys, o.UID, f.CgroupFSType)

	var wg sync.WaitGroup
	timed := func(name string, fn func()) {
		wg.Go(func() {
			start := time.Now()
			fn()
			log.Debug("probe", "name", name, "took", time.Since(start))
		})
	}
	timed("userns", func() {
		f.CloneErr = ProbeUserns(ctx)
	})
	timed("mounts", func() {
		f.Mounts = ProbeMounts(ctx, o.ProbeDir, o.UID, o.GID)
	})
	tools := []*Tool{
		{Name: "fuse-overlayfs"}, {Name: "nsenter"}, {Name: "pasta"}, {Name: "slirp4netns"},
	}
	for _, t := range tools {
		t.Path = lookPath(o.PathEnv, t.Name)
		if t.Path == "" {
			continue
		}
		timed(t.Name, func() {
			t.Version, t.Err = runVersion(ctx, t.Name, t.Path)
		})
	}
	timed("idmap", func() {
		f.Helpers, f.HelpersErr = idmap.FindHelpers(o.PathEnv)
		f.SubUIDs = lookupSubIDs(idmap.UID, o.PathEnv, o.User, o.UID)
		f.SubGIDs = lookupSubIDs(idmap.GID, o.PathEnv, o.User, o.GID)
	})
	f.FuseErr = OpenFuse()
	wg.Wait()
	f.FuseOverlayfs, f.Nsenter, f.Pasta, f.Slirp4netns = *tools[0], *tools[1], *tools[2], *tools[3]
	return f
}

func lookupSubIDs(k idmap.Kind, pathEnv, user string, id uint32) SubIDFacts {
	r, src, err := idmap.LookupSubIDs(k, pathEnv, user, id)
	return SubIDFacts{Ranges: r, Source: src, Err: err}
}
