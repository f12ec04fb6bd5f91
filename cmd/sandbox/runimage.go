package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/profiles"
	"sandbox/spec"
	"sandbox/storeclient"
	"sandbox/userns"
)

// prepared is the store helper's answer to prepare: a storage container
// on the image, its directories and the image's config.
type prepared struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Config imageConfig `json:"config"`
	Layers []string    `json:"layers"` // lowest first
	Upper  string      `json:"upper"`
	Work   string      `json:"work"`
}

// imageRun is what a run of an image keeps for after the command: the
// storage container to remove, or the stored image whose lock it holds.
type imageRun struct {
	store     storeFlags
	container string
	remove    bool
	stored    *storedImage
	// scratch is the host writable layer of a fuse-overlayfs root that
	// keeps nothing; daemon is that root's fuse-overlayfs, once started.
	scratch *fuseoverlay.Scratch
	daemon  *fuseoverlay.Daemon
	// rmLock is held while a --rm run's storage container exists.
	rmLock *os.File
	// started: the command ran; a container whose command never started
	// is removed whatever --rm says, so a failed run leaves nothing.
	started bool
}

func (r *imageRun) markStarted() {
	if r != nil {
		r.started = true
	}
}

// imageRef tells whether the first word of `sandbox run` names an image,
// and which: not after "--" (which always means a host command), and
// either shaped like a reference (a registry, path, tag or digest in it)
// or the name of an image in the store, which then is the reference. A
// bare word that is neither is a host command, so no registry is ever
// asked about a tool name.
func imageRef(word string, afterDash bool, store storeFlags) (string, bool, error) {
	if afterDash || word == "" || strings.HasPrefix(word, "-") || strings.HasPrefix(word, ".") {
		return "", false, nil
	}
	if strings.ContainsAny(word, "/:@") {
		return word, !filepath.IsAbs(word), nil
	}
	names := localImages(word, store)
	switch len(names) {
	case 0:
		return "", false, nil
	case 1:
		return names[0], true, nil
	}
	return "", false, &usageError{msg: fmt.Sprintf("%q names %d images in the store: %s", word, len(names), strings.Join(names, ", ")),
		fix: "sandbox run " + names[0] + " ... (the full name), or sandbox run -- " + word + " ... for the host's command"}
}

// localImages looks word up in the store's image list, which
// containers/storage keeps as plain JSON: "busybox" is found as
// REGISTRY/busybox:latest or REGISTRY/NAMESPACE/busybox:latest.
func localImages(word string, store storeFlags) []string {
	root, err := graphRoot(store)
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(root, "overlay-images", "images.json"))
	if err != nil {
		return nil
	}
	var imgs []struct {
		Names []string `json:"names"`
	}
	if json.Unmarshal(b, &imgs) != nil {
		return nil
	}
	tagged := word
	if !strings.Contains(word, ":") {
		tagged += ":latest"
	}
	var out []string
	for _, img := range imgs {
		for _, n := range img.Names {
			if strings.HasSuffix(n, "/"+tagged) && strings.Count(strings.TrimSuffix(n, "/"+tagged), "/") <= 1 {
				out = append(out, n)
			}
		}
	}
	return out
}

// graphRoot is the store's graph root: --root, else the configuration
// file's root, else the default. The run root is not needed to read it.
func graphRoot(store storeFlags) (string, error) {
	if store.root != "" {
		return store.root, nil
	}
	root, _, err := storeclient.StorePaths(storeclient.ConfigPath(os.Getenv("XDG_CONFIG_HOME"), os.Getenv("HOME")))
	if err != nil || root != "" {
		return root, err
	}
	return storeclient.DefaultRoot(os.Getenv("XDG_DATA_HOME"), os.Getenv("HOME"))
}

// planImage prepares a storage container on the image (pulling it as
// --pull says) and sets in up to run it: its layers as the root, its
// config's command, environment, working directory and user, overridden
// by the flags.
func planImage(e *env, f *runFlags, in *profiles.Inputs, name, ref string, args []string) (userns.IDMapper, *imageRun, error) {
	switch f.pull {
	case "missing", "always", "never":
	default:
		return nil, nil, &usageError{msg: fmt.Sprintf("invalid --pull %q: want missing, always or never", f.pull), fix: "sandbox run --pull=missing IMAGE ..."}
	}
	st := storeFlags{root: f.storeRoot, runRoot: f.storeRunRoot, quiet: true, debug: f.debug}
	// A run that keeps nothing needs no storage container: its writable
	// layer is a tmpfs inside the sandbox, or with fuse-overlayfs, which
	// runs outside, a scratch directory on the host.
	if f.rm && f.name == "" && f.pull != "always" {
		graph, err := graphRoot(st)
		if err != nil {
			return nil, nil, err
		}
		si, err := openStored(graph, ref)
		if err == nil {
			e.log.Debug("image", "from", "store files", "id", si.id, "layers", len(si.layers))
			p := prepared{Layers: si.layers, Config: si.config}
			run := &imageRun{stored: si}
			if f.overlay == spec.OverlayFuse {
				if run.scratch, err = fuseoverlay.NewScratch(graph); err != nil {
					si.release()
					return nil, nil, &storeDirError{What: "a writable layer for fuse-overlayfs", Dir: graph, Err: err}
				}
				p.Upper, p.Work = run.scratch.Upper(), run.scratch.Work()
			}
			return applyImage(e, f, in, name, ref, args, p, run)
		}
		e.log.Debug("image", "from", "store helper", "why", err.Error())
	}
	pull := func() error {
		pf := storeFlags{root: st.root, runRoot: st.runRoot, debug: st.debug, quiet: !e.isTerminal()}
		var a storeAnswer
		m, err := callStore(e, &pf, &a, nil, append([]string{"pull", fmt.Sprintf("--tls-verify=%t", f.tlsVerify)}, ref)...)
		if err == nil {
			report(e, m, &a)
		}
		return err
	}
	if f.pull == "always" {
		if err := pull(); err != nil {
			return nil, nil, err
		}
	}
	prep := []string{"prepare", ref}
	if f.name != "" {
		prep = append(prep, "--name", f.name)
	}
	var rmLock *os.File
	if f.rm {
		// Held until the container is removed: if this run is killed
		// first, the next prepare finds the lock free and removes it.
		graph, err := graphRoot(st)
		if err != nil {
			return nil, nil, err
		}
		if rmLock, err = newRmLock(graph); err != nil {
			return nil, nil, &storeDirError{What: "the lock of a --rm run", Dir: graph, Err: err}
		}
		prep = append(prep, "--rm-lock", filepath.Base(rmLock.Name()))
	}
	var p prepared
	_, err := callStore(e, &st, &p, nil, prep...)
	var se *storeclient.Error
	if err != nil && f.pull == "missing" && errors.As(err, &se) && se.Kind == "not-found" {
		if err = pull(); err == nil {
			_, err = callStore(e, &st, &p, nil, prep...)
		}
	}
	if err != nil {
		releaseRmLock(rmLock)
		return nil, nil, err
	}
	return applyImage(e, f, in, name, ref, args, p, &imageRun{store: st, container: p.ID, remove: f.rm, rmLock: rmLock})
}

// newRmLock makes and locks GRAPHROOT/sandbox-runs/rm-RANDOM.lock, the
// lock of a --rm run's storage container (image.RmLockDir).
func newRmLock(graphRoot string) (*os.File, error) {
	dir := filepath.Join(graphRoot, "sandbox-runs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "rm-*.lock")
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		releaseRmLock(f)
		return nil, err
	}
	return f, nil
}

// releaseRmLock removes and unlocks a --rm run's lock file.
func releaseRmLock(f *os.File) {
	if f != nil {
		os.Remove(f.Name())
		f.Close()
	}
}

// applyImage sets in up to run image p: its layers as the root (with the
// container's directories, or a throwaway tmpfs layer when p has none),
// its config under the flags. On error it cleans run up.
func applyImage(e *env, f *runFlags, in *profiles.Inputs, name, ref string, args []string, p prepared, run *imageRun) (userns.IDMapper, *imageRun, error) {
	fail := func(err error) (userns.IDMapper, *imageRun, error) {
		run.cleanup(e)
		return nil, nil, err
	}
	e.log.Debug("image", "container", p.ID, "layers", len(p.Layers), "upper", p.Upper)

	lower := slices.Clone(p.Layers)
	slices.Reverse(lower)
	in.Rootfs = &spec.Rootfs{Lower: lower, Upper: p.Upper, Work: p.Work, ReadOnly: f.readOnly, Overlay: f.overlay}

	mapper, err := planRootMap(e, f, in, name)
	if err != nil {
		return fail(err)
	}
	user := f.user
	if user == "" {
		user = p.Config.User
	}
	uid, gid, home, err := resolveUser(lower, user)
	if err != nil {
		return fail(err)
	}
	if err := setUser(f, in, uid, gid, home); err != nil {
		return fail(err)
	}
	// After the HOME of the user's passwd entry: the image's own wins.
	in.ImageEnv = append(in.ImageEnv, p.Config.Env...)

	entry := p.Config.Entrypoint
	cmd := p.Config.Cmd
	if f.entrypointSet {
		// As with podman: a new entrypoint drops the image's command.
		entry, cmd = nil, nil
		if f.entrypoint != "" {
			entry = []string{f.entrypoint}
		}
	}
	if len(args) > 0 {
		cmd = args
	}
	in.Args = append(slices.Clone(entry), cmd...)
	if len(in.Args) == 0 {
		return fail(&usageError{msg: fmt.Sprintf("image %s has no command and none was given", ref), fix: "sandbox run IMAGE COMMAND [ARG...]"})
	}
	if in.Workdir == "" {
		in.Workdir = p.Config.WorkingDir
	}
	return mapper, run, nil
}

// cleanup removes the storage container after the run when --rm said so
// (or the run never started).
func (r *imageRun) cleanup(e *env) {
	if r == nil {
		return
	}
	if r.scratch != nil {
		e.log.Debug("stage", "stage", "cleanup", "ms", sinceMs(started))
		err := r.scratch.Remove(r.daemon)
		e.log.Debug("stage", "stage", "scratch-removed", "ms", sinceMs(started))
		if err != nil {
			fmt.Fprintf(e.stderr, "sandbox: warning: could not remove the writable layer %s: %v\n", r.scratch.Dir, err)
		}
		r.scratch = nil
	}
	if r.daemon != nil {
		r.daemon.Close()
		r.daemon = nil
	}
	if r.stored != nil {
		r.stored.release()
		return
	}
	if r.container == "" {
		return // --rootfs
	}
	if !r.remove && r.started {
		e.log.Debug("image", "kept", r.container)
		return
	}
	var a storeAnswer
	if _, err := callStore(e, &r.store, &a, nil, "remove", r.container); err != nil {
		fmt.Fprintf(e.stderr, "sandbox: warning: could not remove container %s: %v\n", shortID(r.container), err)
		// The lock stays free once we exit: the next run removes it.
		r.rmLock.Close()
		return
	}
	releaseRmLock(r.rmLock)
}

// storeDirError is a file sandbox keeps beside the image store (a
// scratch layer for fuse-overlayfs, a --rm run's lock) that could not be
// made under Dir.
type storeDirError struct {
	What string
	Dir  string
	Err  error
}

func (e *storeDirError) Error() string {
	return "make " + e.What + " under " + e.Dir + ": " + e.Err.Error()
}
func (e *storeDirError) Unwrap() error { return e.Err }

// isTerminal tells whether stderr is a terminal (progress bars).
func (e *env) isTerminal() bool {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
