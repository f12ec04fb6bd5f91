package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"sandbox/idmap"
	"sandbox/prespawn"
	"sandbox/rundir"
	"sandbox/spec"
	"sandbox/userns"
)

// prespawnCommand is the hidden entry point of the pre-spawner.
const prespawnCommand = "__prespawn"

// defaultPrespawn is how long a pre-spawner waits for the next run.
const defaultPrespawn = time.Minute

// parsePrespawn reads --prespawn: "off", or how long to keep a sandbox
// pre-spawned for the next run.
func parsePrespawn(v string) (time.Duration, error) {
	if v == "off" || v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &usageError{msg: fmt.Sprintf("invalid --prespawn %q: want a duration like 1m, or off", v), fix: "sandbox run --prespawn=1m ... (or --prespawn=off)"}
	}
	return d, nil
}

// spawnArgs describes how s is spawned, as the pre-spawner's arguments;
// they are also part of the fingerprint, so a run only takes a sandbox
// spawned exactly as its own would be.
func spawnArgs(s *spec.Spec, mapper userns.IDMapper) []string {
	c := userns.SpawnConfigFor(s, mapper)
	caps := make([]string, len(c.Caps))
	for i, n := range c.Caps {
		caps[i] = strconv.FormatUint(uint64(n), 10)
	}
	args := []string{
		"--caps=" + strings.Join(caps, ","),
		"--uidmap=" + formatMaps(s.OCI.Linux.UIDMappings),
		"--gidmap=" + formatMaps(s.OCI.Linux.GIDMappings),
	}
	if hm, ok := mapper.(*helperMapper); ok {
		args = append(args, "--newuidmap="+hm.helpers.NewUIDMap, "--newgidmap="+hm.helpers.NewGIDMap)
	}
	return args
}

func formatMaps(ms []specs.LinuxIDMapping) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
	}
	return strings.Join(parts, ",")
}

// takePrespawned returns a pre-spawned sandbox for s, or nil (and starts a
// pre-spawner for next time when there is none) so the run goes direct.
func takePrespawned(e *env, s *spec.Spec, mapper userns.IDMapper, keep time.Duration) *prespawn.Taken {
	direct := func(why string) *prespawn.Taken {
		e.log.Debug("prespawn", "mode", "direct", "why", why)
		return nil
	}
	if keep == 0 {
		return direct("--prespawn=off")
	}
	uid := os.Getuid()
	path := rundir.Path(uid, os.Getenv("XDG_RUNTIME_DIR"))
	dir, err := rundir.Open(path, uid)
	if err != nil {
		return direct(err.Error())
	}
	defer dir.Close()
	extra := spawnArgs(s, mapper)
	key, err := prespawn.Fingerprint("/proc/self", extra)
	if err != nil {
		return direct(err.Error())
	}
	e.log.Debug("stage", "stage", "fingerprinted", "ms", sinceMs(started))
	t, err := prespawn.Take(dir, key, extra, 2*time.Second)
	if err == nil {
		e.log.Debug("stage", "stage", "taken", "ms", sinceMs(started))
		e.log.Debug("prespawn", "mode", "taken", "socket", path+"/warm-"+key+".sock")
		return t
	}
	if errors.Is(err, prespawn.ErrNone) {
		args := append([]string{prespawnCommand, "--dir-fd=3", "--key=" + key, "--idle=" + keep.String()}, extra...)
		if serr := prespawn.Start(dir, args); serr != nil {
			return direct(serr.Error())
		}
		return direct("none running in this context; started one for the next run")
	}
	return direct(err.Error())
}

// prespawnMain is the pre-spawner process (see package prespawn).
func prespawnMain(args []string) int {
	c, err := parsePrespawnArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %s is internal and not for direct use: %v\n", prespawnCommand, err)
		return 125
	}
	defer c.Dir.Close()
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer stop()
	if err := prespawn.Serve(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: pre-spawner: %v\n", err)
		return 1
	}
	return 0
}

func parsePrespawnArgs(args []string) (prespawn.ServerConfig, error) {
	var (
		c          prespawn.ServerConfig
		uids, gids []specs.LinuxIDMapping
		helpers    idmap.Helpers
		dirFD      = -1
	)
	for _, a := range args {
		name, val, ok := strings.Cut(a, "=")
		if !ok {
			return c, fmt.Errorf("unexpected argument %q", a)
		}
		var err error
		switch name {
		case "--dir-fd":
			dirFD, err = strconv.Atoi(val)
		case "--key":
			c.Key = val
		case "--idle":
			c.Idle, err = time.ParseDuration(val)
		case "--caps":
			for _, v := range strings.Split(val, ",") {
				if v == "" {
					continue
				}
				n, perr := strconv.ParseUint(v, 10, 8)
				if perr != nil {
					err = perr
					break
				}
				c.Spawn.Caps = append(c.Spawn.Caps, uintptr(n))
			}
		case "--uidmap", "--gidmap":
			var ms []specs.LinuxIDMapping
			for _, v := range strings.Split(val, ",") {
				m, perr := idmap.ParseMapping(v)
				if perr != nil {
					err = perr
					break
				}
				ms = append(ms, m)
			}
			if name == "--uidmap" {
				uids = ms
			} else {
				gids = ms
			}
		case "--newuidmap":
			helpers.NewUIDMap = val
		case "--newgidmap":
			helpers.NewGIDMap = val
		default:
			return c, fmt.Errorf("unknown argument %q", a)
		}
		if err != nil {
			return c, fmt.Errorf("%s: %w", name, err)
		}
		if name != "--dir-fd" && name != "--key" && name != "--idle" {
			c.Extra = append(c.Extra, a)
		}
	}
	if dirFD < 3 || c.Key == "" || c.Idle <= 0 || len(uids) == 0 || len(gids) == 0 {
		return c, errors.New("--dir-fd, --key, --idle, --uidmap and --gidmap are required")
	}
	if (helpers.NewUIDMap == "") != (helpers.NewGIDMap == "") {
		return c, errors.New("--newuidmap and --newgidmap go together")
	}
	unix.CloseOnExec(dirFD)
	c.Dir = os.NewFile(uintptr(dirFD), "prespawn-dir")
	c.Spawn.Prewarm = true
	if helpers.NewUIDMap != "" {
		c.Spawn.Mapper = &helperMapper{uids: uids, gids: gids, helpers: helpers}
	} else {
		c.Spawn.UIDs, c.Spawn.GIDs = uids, gids
	}
	return c, nil
}
