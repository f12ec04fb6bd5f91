package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/idmap"
	"sandbox/profiles"
	"sandbox/seccomp"
	"sandbox/spec"
	"sandbox/storeclient"
	"sandbox/userns"
)

// runFlags are the flags of `sandbox run`, named as podman names them where
// the meaning is the same.
type runFlags struct {
	volumes     []string
	tmpfs       []string
	env         []string
	envFiles    []string
	workdir     string
	hostname    string
	tty         bool
	interactive bool
	userns      string
	uidmap      []string
	gidmap      []string
	profile     string
	debug       bool
	capAdd      []string
	capDrop     []string
	securityOpt []string
	prespawn    string
	rootfs      string
	readOnly    bool
	user        string
	profileSet  bool

	// image runs
	pull          string
	entrypoint    string
	entrypointSet bool
	rm            bool
	name          string
	tlsVerify     bool
	storeRoot     string
	storeRunRoot  string
	afterDash     bool
	// overlay is the --overlay flag; resolved by overlayMode.
	overlay string
}

const runUsage = `Usage: sandbox run [OPTIONS] -- COMMAND [ARG...]
       sandbox run [OPTIONS] IMAGE [COMMAND [ARG...]]

Run COMMAND from the host in new user, mount, PID, UTS, IPC, network and
cgroup namespaces. The default profile shows the host's system directories
read-only, the current directory read-write, and a private /tmp, /proc and
/dev; the rest of $HOME is not visible.

Or run an OCI image: the first word is an image when it is not after "--"
and looks like a reference (REGISTRY/NAME[:TAG], NAME:TAG, ...@DIGEST) or
names an image in the store.

Options:
`

func cmdRun(e *env, args []string) (int, error) {
	var f runFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(e.stdout, runUsage)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
	}
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind-mount SRC at DST (`SRC:DST[:ro]`)")
	fs.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a new tmpfs at `DST[:OPTS]`")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set `NAME=VALUE`, or pass NAME from the host")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read variables from `FILE`, one NAME=VALUE a line")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working `DIR` inside (default: the current directory)")
	fs.StringVar(&f.hostname, "hostname", "", "host `NAME` inside (default: the profile's)")
	fs.BoolVarP(&f.tty, "tty", "t", false, "give the command a terminal of its own")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin attached")
	fs.StringVar(&f.userns, "userns", "auto", "id mapping: `auto`, keep-id (your ids plus the subordinate ranges), single (your ids only)")
	fs.StringArrayVar(&f.uidmap, "uidmap", nil, "explicit uid map `INSIDE:HOST:COUNT` (host ids yours or delegated)")
	fs.StringArrayVar(&f.gidmap, "gidmap", nil, "explicit gid map `INSIDE:HOST:COUNT`")
	fs.StringVar(&f.profile, "profile", "default", "profile `NAME`")
	fs.BoolVar(&f.debug, "debug", false, "log each stage and the decisions behind it")
	fs.StringArrayVar(&f.capAdd, "cap-add", nil, "grant the command `CAP` (e.g. NET_RAW, or ALL)")
	fs.StringArrayVar(&f.capDrop, "cap-drop", nil, "remove `CAP` from the bounding set (or ALL)")
	fs.StringArrayVar(&f.securityOpt, "security-opt", nil, "`OPT`: seccomp=FILE|unconfined, mask=PATH[:PATH], unmask=PATH[:PATH]|ALL")
	fs.StringVar(&f.rootfs, "rootfs", "", "run from the root directory `DIR` (never written to: writes go to a layer discarded at exit)")
	fs.BoolVar(&f.readOnly, "read-only", false, "make the root read-only (with --rootfs)")
	fs.StringVarP(&f.user, "user", "u", "", "run as `USER[:GROUP]` inside, names or ids (with --rootfs; default root)")
	fs.StringVar(&f.pull, "pull", "missing", "pull the image: `missing`, always or never")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "run `PROGRAM` instead of the image's entrypoint")
	fs.BoolVar(&f.rm, "rm", false, "remove the image's container when the command ends")
	fs.StringVar(&f.name, "name", "", "name the image's container `NAME`")
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "with --pull: require HTTPS with a verified certificate")
	fs.StringVar(&f.storeRoot, "root", "", "image store `DIR` (default ~/.local/share/sandbox/storage)")
	fs.StringVar(&f.storeRunRoot, "runroot", "", "image store run-time `DIR`")
	fs.StringVar(&f.overlay, "overlay", "", "assemble an image's root with `MODE`: auto (kernel overlayfs, else fuse-overlayfs), kernel or fuse (default: overlay in images.toml, else auto)")
	fs.StringVar(&f.prespawn, "prespawn", defaultPrespawn.String(), "keep a sandbox spawned ahead for the next run for `DURATION` after this one, or off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0, errHelp
		}
		return 0, &usageError{msg: err.Error(), fix: "sandbox run --help"}
	}
	if f.debug {
		e.enableDebug()
	}
	f.profileSet = fs.Changed("profile")
	f.entrypointSet = fs.Changed("entrypoint")
	f.afterDash = fs.ArgsLenAtDash() == 0
	argv := fs.Args()
	if len(argv) == 0 {
		return 0, &usageError{msg: "no command given", fix: "sandbox run [OPTIONS] -- COMMAND [ARG...]"}
	}

	keep, err := parsePrespawn(f.prespawn)
	if err != nil {
		return 0, err
	}
	for {
		code, err := runOnce(e, &f, argv, keep)
		var ce *userns.ChildError
		if err != nil && errors.As(err, &ce) && ce.KernelOverlay && f.overlay == spec.OverlayAuto {
			// The kernel refused the overlay of a tmpfs writable layer
			// (with a layer on the host the init falls back by itself);
			// the command never started. Again, with fuse-overlayfs and
			// a scratch layer on the host.
			e.log.Debug("image", "kernel overlay refused", err.Error(), "then", "fuse-overlayfs")
			f.overlay = spec.OverlayFuse
			continue
		}
		return code, err
	}
}

// runOnce plans and runs one sandbox.
func runOnce(e *env, f *runFlags, argv []string, keep time.Duration) (int, error) {
	s, mapper, img, err := planRun(e, f, argv)
	if err != nil {
		return 0, err
	}
	defer img.cleanup(e)
	e.forwardSignals()

	stdin := e.stdin
	if !f.interactive {
		// The init's own stdin; the command gets /dev/null from inside.
		null, err := os.Open(os.DevNull)
		if err != nil {
			return 0, err
		}
		defer null.Close()
		stdin = null
	}
	o := userns.Options{Mapper: mapper, Stdin: stdin, Stdout: fileOf(e.stdout, os.Stdout), Stderr: fileOf(e.stderr, os.Stderr), Log: e.log, Start: started, Signals: e.forward}
	if r := s.Rootfs; r != nil && r.Overlay != spec.OverlayKernel && img != nil {
		o.ServeRoot = func(dev, ns *os.File) (userns.RootDaemon, error) {
			d, err := fuseoverlay.Start(r, dev, ns)
			if err != nil {
				return nil, err
			}
			e.log.Debug("root", "overlay", "fuse-overlayfs", "pid", d.Pid(), "landlock", d.Confined)
			img.daemon = d
			return d, nil
		}
	}
	// A host-tool run leaves nothing on the host to remove once the
	// sandbox is gone: the CLI may return as soon as its command ended.
	o.ReturnAtExit = s.Rootfs == nil && img == nil
	e.log.Debug("stage", "stage", "planned", "ms", sinceMs(started))
	o.EncodedSpec = userns.EncodeSpec(s)
	var res userns.Result
	t := takePrespawned(e, s, mapper, keep)
	if t != nil {
		res, err = t.Sandbox.Run(context.Background(), s, o)
		t.Done(o.EncodedSpec)
	} else {
		res, err = userns.Run(context.Background(), s, o)
	}
	if err != nil {
		return 0, err
	}
	img.markStarted()
	return res.ExitCode, nil
}

// forwardSignals registers, once, the signals a run forwards to its
// command: from when the run is planned (an image pulled, say, a Ctrl-C
// still ends the CLI) to when the process exits, never stopped. The
// runtime takes two thread round trips per signal to register one; on a
// goroutine, beside taking the sandbox, that is off the run's path. A
// signal that comes before the sandbox's command exists is passed on as
// soon as it does.
func (e *env) forwardSignals() {
	if e.forward == nil {
		e.forward = make(chan os.Signal, 16)
		go signal.Notify(e.forward, userns.Forwarded...)
	}
}

func sinceMs(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return fmt.Sprintf("%.2f", float64(time.Since(t).Microseconds())/1000)
}

// fileOf is the file behind w, which the sandbox's processes inherit, or
// fallback when w is not one.
func fileOf(w any, fallback *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return fallback
}

// planRun turns the flags into a frozen spec and, when the full map is
// used, the mapper that runs the helpers.
func planRun(e *env, f *runFlags, argv []string) (*spec.Spec, userns.IDMapper, *imageRun, error) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	name := userName(uid)
	in := profiles.Inputs{
		Args:        argv,
		Workdir:     f.workdir,
		Volumes:     f.volumes,
		Tmpfs:       f.tmpfs,
		Env:         f.env,
		HostEnv:     os.Environ(),
		Hostname:    f.hostname,
		Terminal:    f.tty,
		Interactive: f.interactive,
		UID:         uid,
		GID:         gid,
		Debug:       f.debug,
		CapAdd:      f.capAdd,
		CapDrop:     f.capDrop,
	}
	if err := parseSecurityOpts(e, f.securityOpt, &in); err != nil {
		return nil, nil, nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("current directory: %w", err)
	}
	in.Cwd = cwd
	for _, p := range f.envFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, nil, &envFileReadError{Path: p, Err: err}
		}
		in.EnvFiles = append(in.EnvFiles, profiles.EnvFile{Path: p, Data: b})
	}
	if f.tty {
		for _, fd := range []int{int(e.stdin.Fd()), int(fileOf(e.stdout, os.Stdout).Fd())} {
			if w, h, err := term.GetSize(fd); err == nil {
				in.ConsoleSize = &specs.Box{Width: uint(w), Height: uint(h)}
				break
			}
		}
	}

	var (
		mapper userns.IDMapper
		img    *imageRun
	)
	ref, isImage, err := imageRef(argv[0], f.afterDash || f.rootfs != "", storeFlags{root: f.storeRoot})
	if err != nil {
		return nil, nil, nil, err
	}
	if isImage || f.rootfs != "" || f.overlay != "" {
		// Only a root of layers has an overlay: host-tool runs do not
		// read the image configuration (a flag is still checked).
		if f.overlay, err = overlayMode(f.overlay); err != nil {
			return nil, nil, nil, err
		}
	}
	if isImage {
		if mapper, img, err = planImage(e, f, &in, name, ref, argv[1:]); err != nil {
			return nil, nil, nil, err
		}
		if !f.profileSet {
			f.profile = "container"
		}
	} else if f.rootfs != "" {
		if mapper, img, err = planRootfs(e, f, &in, name); err != nil {
			return nil, nil, nil, err
		}
		if !f.profileSet {
			f.profile = "container"
		}
	} else {
		if f.readOnly || f.user != "" {
			return nil, nil, nil, &usageError{msg: "--read-only and --user need a root of the sandbox's own", fix: "sandbox run --rootfs DIR ... or sandbox run IMAGE ..."}
		}
		// Nothing slow or interactive is left before the run: the
		// registration overlaps the rest of the plan.
		e.forwardSignals()
		if mapper, err = planIDs(e, f, &in, name); err != nil {
			return nil, nil, nil, err
		}
	}
	prof, err := profiles.Load(f.profile)
	if err != nil {
		img.cleanup(e)
		return nil, nil, nil, err
	}
	s, err := profiles.Plan(prof, in, os.DirFS("/"))
	if err != nil {
		img.cleanup(e)
		return nil, nil, nil, err
	}
	return s, mapper, img, nil
}

// overlayMode resolves --overlay: the flag, else overlay in images.toml,
// else auto.
func overlayMode(flag string) (string, error) {
	mode := flag
	if mode == "" {
		var err error
		if mode, err = storeclient.Overlay(storeclient.ConfigPath(os.Getenv("XDG_CONFIG_HOME"), os.Getenv("HOME"))); err != nil {
			return "", err
		}
	}
	switch mode {
	case "":
		return spec.OverlayAuto, nil
	case spec.OverlayAuto, spec.OverlayKernel, spec.OverlayFuse:
		return mode, nil
	}
	return "", &usageError{msg: fmt.Sprintf("invalid --overlay %q: want auto, kernel or fuse", flag), fix: "sandbox run --overlay=auto IMAGE ..."}
}

// planIDs decides the id maps for in and returns the mapper that writes
// them (nil for a single map, which the runtime writes itself).
func planIDs(e *env, f *runFlags, in *profiles.Inputs, name string) (userns.IDMapper, error) {
	pathEnv := os.Getenv("PATH")
	explicit := len(f.uidmap) > 0 || len(f.gidmap) > 0
	switch f.userns {
	case "auto", "keep-id", "single":
	default:
		return nil, &usageError{msg: fmt.Sprintf("invalid --userns %q: want auto, keep-id or single", f.userns), fix: "sandbox run --userns=auto ..."}
	}
	if explicit && f.userns == "single" {
		return nil, &usageError{msg: "--uidmap/--gidmap need the subordinate ranges and cannot be combined with --userns=single", fix: "drop --userns=single"}
	}
	if f.userns == "single" {
		in.IDMap = spec.IDMapSingle
		in.UIDMappings, in.GIDMappings = idmap.PlanSingle(in.UID), idmap.PlanSingle(in.GID)
		e.log.Debug("idmap", "mode", "single", "why", "--userns=single")
		return nil, nil
	}
	d := idmap.Decide(pathEnv, name, in.UID, in.GID)
	if !d.Full {
		if explicit || f.userns == "keep-id" {
			return nil, &fullMapError{Flag: askedFor(f), Err: d.Reason}
		}
		e.log.Debug("idmap", "mode", "single", "why", d.Reason.Error())
		in.IDMap = spec.IDMapSingle
		in.UIDMappings, in.GIDMappings = d.UIDs, d.GIDs
		return nil, nil
	}
	in.IDMap = spec.IDMapSubIDs
	in.UIDMappings, in.GIDMappings = d.UIDs, d.GIDs
	if explicit {
		uids, err := parseMaps(f.uidmap)
		if err != nil {
			return nil, err
		}
		gids, err := parseMaps(f.gidmap)
		if err != nil {
			return nil, err
		}
		// Like podman, one side given alone applies to both.
		if len(uids) == 0 {
			uids = gids
		}
		if len(gids) == 0 {
			gids = uids
		}
		if err := idmap.CheckDelegated(idmap.UID, uids, in.UID, d.SubUIDs); err != nil {
			return nil, err
		}
		if err := idmap.CheckDelegated(idmap.GID, gids, in.GID, d.SubGIDs); err != nil {
			return nil, err
		}
		in.UIDMappings, in.GIDMappings = uids, gids
	}
	e.log.Debug("idmap", "mode", "subids", "newuidmap", d.Helpers.NewUIDMap, "uids", fmt.Sprint(in.UIDMappings), "gids", fmt.Sprint(in.GIDMappings))
	return &helperMapper{uids: in.UIDMappings, gids: in.GIDMappings, helpers: d.Helpers}, nil
}

func askedFor(f *runFlags) string {
	if len(f.uidmap) > 0 {
		return "--uidmap"
	}
	if len(f.gidmap) > 0 {
		return "--gidmap"
	}
	return "--userns=" + f.userns
}

func parseMaps(vals []string) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	for _, v := range vals {
		m, err := idmap.ParseMapping(v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// helperMapper writes the maps with newuidmap and newgidmap.
type helperMapper struct {
	uids, gids []specs.LinuxIDMapping
	helpers    idmap.Helpers
}

func (m *helperMapper) MapIDs(ctx context.Context, pid int) error {
	return idmap.Apply(ctx, pid, m.uids, m.gids, m.helpers)
}

// fullMapError: the user asked for something only the full map gives.
type fullMapError struct {
	Flag string
	Err  error
}

func (e *fullMapError) Error() string { return e.Flag + " needs the full id map: " + e.Err.Error() }
func (e *fullMapError) Unwrap() error { return e.Err }

type envFileReadError struct {
	Path string
	Err  error
}

func (e *envFileReadError) Error() string { return "env file " + e.Path + ": " + e.Err.Error() }
func (e *envFileReadError) Unwrap() error { return e.Err }

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// parseSecurityOpts reads --security-opt values into in.
func parseSecurityOpts(e *env, opts []string, in *profiles.Inputs) error {
	for _, o := range opts {
		key, val, _ := strings.Cut(o, "=")
		switch key {
		case "seccomp":
			switch val {
			case "":
				return &usageError{msg: "--security-opt seccomp needs a value", fix: "--security-opt seccomp=FILE or seccomp=unconfined"}
			case "unconfined":
				in.Unconfined = true
				fmt.Fprintln(e.stderr, "sandbox: warning: seccomp=unconfined: the command may make every system call, including those behind past kernel escapes")
			default:
				b, err := os.ReadFile(val)
				if err != nil {
					return &seccompFileError{Path: val, Err: err}
				}
				prof, err := seccomp.Parse(b)
				if err != nil {
					return &seccompFileError{Path: val, Err: err}
				}
				in.Seccomp = prof
			}
		case "mask":
			in.Mask = append(in.Mask, strings.Split(val, ":")...)
		case "unmask":
			in.Unmask = append(in.Unmask, strings.Split(val, ":")...)
		case "no-new-privileges":
			if val != "" && val != "true" {
				return &usageError{msg: "no_new_privs is always on in a sandbox", fix: "drop --security-opt " + o}
			}
		default:
			return &usageError{msg: fmt.Sprintf("unknown --security-opt %q", o), fix: "--security-opt seccomp=FILE|unconfined, mask=PATH, unmask=PATH|ALL"}
		}
	}
	return nil
}

// seccompFileError is a --security-opt seccomp=FILE that cannot be used.
type seccompFileError struct {
	Path string
	Err  error
}

func (e *seccompFileError) Error() string { return "seccomp profile " + e.Path + ": " + e.Err.Error() }
func (e *seccompFileError) Unwrap() error { return e.Err }
