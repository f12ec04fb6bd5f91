package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	fuseoverlay "sandbox/fuse-overlay"
	"sandbox/preflight"
	"sandbox/profiles"
	"sandbox/spec"
	"sandbox/userns"
)

// explainSpec covers mistakes in what the user asked for: flags, volumes,
// profiles and env files. All are found before anything is spawned.
func explainSpec(err error) *message {
	var (
		inv  *spec.InvalidError
		vol  *profiles.VolumeError
		src  *profiles.BindSourceError
		unk  *profiles.UnknownError
		dec  *profiles.DecodeError
		envf *profiles.EnvFileError
		envr *envFileReadError
		unm  *profiles.UnmappedUserError
		scf  *seccompFileError
		sx   *privilegedBinaryError
	)
	switch {
	case errors.As(err, &inv):
		m := &message{summary: fmt.Sprintf("invalid %s %q: %s", inv.Field, inv.Value, inv.Reason)}
		switch inv.Reason {
		case spec.ReasonNotAbsolute:
			m.fixes = []string{"give an absolute path inside the sandbox, e.g. /" + trimDots(inv.Value)}
		case spec.ReasonDotDot:
			m.fixes = []string{"give the " + inv.Field + " without '..', as an absolute path inside the sandbox"}
		}
		return m
	case errors.As(err, &vol):
		return &message{summary: fmt.Sprintf("invalid --volume %q: %s", vol.Value, vol.Reason),
			fixes: []string{"sandbox run -v /host/dir:/dir[:ro] ..."}}
	case errors.As(err, &src):
		m := &message{summary: fmt.Sprintf("cannot bind %s on %s: %s", src.Source, src.Dest, errText(src.Err))}
		if errors.Is(src.Err, syscall.ENOENT) {
			m.fixes = []string{"create it first: mkdir -p " + shellQuote(src.Source), "correct the source path of -v"}
		} else if errors.Is(src.Err, syscall.EACCES) {
			m.fixes = []string{"bind a path you can read, or fix its permissions: ls -ld " + shellQuote(src.Source)}
		}
		return m
	case errors.As(err, &unk):
		return &message{summary: fmt.Sprintf("unknown profile %q", unk.Name),
			causes: []string{fmt.Sprintf("available profiles: %v", unk.Available)},
			fixes:  []string{"sandbox run --profile default ..."}}
	case errors.As(err, &dec):
		return &message{summary: fmt.Sprintf("cannot read profile %s: %v", dec.Name, dec.Err)}
	case errors.As(err, &envf):
		return &message{summary: fmt.Sprintf("invalid line %d in --env-file %s: %q", envf.Line, envf.Path, envf.Text),
			fixes: []string{"write one NAME=VALUE (or NAME) per line; # starts a comment"}}
	case errors.As(err, &envr):
		return &message{summary: fmt.Sprintf("cannot read --env-file %s: %s", envr.Path, errText(envr.Err))}
	case errors.As(err, &scf):
		return &message{summary: fmt.Sprintf("cannot use seccomp profile %s: %s", scf.Path, errText(scf.Err)),
			fixes: []string{"give an OCI seccomp profile (JSON, as podman and runc read it)", "--security-opt seccomp=unconfined turns filtering off (not recommended)"}}
	case errors.As(err, &sx):
		return &message{summary: fmt.Sprintf("refusing to run: %s is %s", sx.Path, sx.What),
			causes: []string{"sandbox needs no privilege of its own; a setuid or capability-carrying copy would let anyone borrow yours"},
			fixes:  []string{"sudo chmod u-s,g-s " + shellQuote(sx.Path), "sudo setcap -r " + shellQuote(sx.Path) + "   (if it has file capabilities)"}}
	case errors.As(err, &unm):
		what := "user"
		if unm.Kind == "gid" {
			what = "group"
		}
		return &message{summary: fmt.Sprintf("cannot map %s IDs: %v", what, unm),
			fixes: []string{fmt.Sprintf("add a mapping for it, e.g. --%smap %d:%d:1", unm.Kind, unm.ID, unm.ID)}}
	}
	return nil
}

// explainUserns covers failures while starting the sandbox.
func explainUserns(err error) *message {
	return explainUsernsWith(err, func() preflight.UsernsFacts { return preflight.ReadUsernsFacts(os.DirFS("/")) })
}

func explainUsernsWith(err error, facts func() preflight.UsernsFacts) *message {
	var (
		sp *userns.SpawnError
		ce *userns.ChildError
		me *userns.MapError
		pe *userns.ProtocolError
		fm *fullMapError
		rd *userns.RootDaemonError
	)
	switch {
	case errors.As(err, &fm):
		if m := explainIDMap(fm.Err); m != nil {
			m.causes = append(m.causes, fm.Flag+" asks for the full map of your subordinate ranges")
			return m
		}
		return &message{summary: fm.Error()}
	case errors.As(err, &me):
		if m := explainIDMap(me.Err); m != nil {
			return m
		}
		return &message{summary: "cannot map user IDs: " + errText(me.Err)}
	case errors.As(err, &sp):
		return explainSpawn(sp, facts())
	case errors.As(err, &ce):
		return explainChild(ce, facts)
	case errors.As(err, &pe):
		return &message{summary: pe.Detail, fixes: []string{"sandbox run --debug ... shows each stage", "sandbox doctor"}}
	case errors.As(err, &rd):
		return explainRootDaemon(rd)
	}
	return nil
}

// explainRootDaemon: fuse-overlayfs could not be started or failed
// serving the root.
func explainRootDaemon(rd *userns.RootDaemonError) *message {
	var (
		miss *fuseoverlay.MissingError
		exit *fuseoverlay.ExitError
	)
	switch {
	case errors.As(rd, &miss):
		pkg := map[string]string{fuseoverlay.Program: "fuse-overlayfs", fuseoverlay.Nsenter: "util-linux"}[miss.Program]
		return &message{summary: miss.Program + " not found in PATH: the image's root is to be served by fuse-overlayfs",
			fixes: []string{"sudo apt-get install " + pkg + " (Debian, Ubuntu; dnf install " + pkg + " on Fedora)", "sandbox run --overlay=kernel ... where the kernel allows overlayfs in a user namespace"}}
	case errors.As(rd, &exit):
		return &message{summary: "fuse-overlayfs failed serving the image's root: " + exit.Error(),
			fixes: []string{"sandbox run --overlay=kernel ...", "sandbox doctor"}}
	}
	return &message{summary: "cannot serve the image's root: " + errText(rd.Err), fixes: []string{"sandbox doctor"}}
}

func explainSpawn(sp *userns.SpawnError, f preflight.UsernsFacts) *message {
	m := &message{summary: "cannot create user namespaces: " + errText(sp.Err)}
	if f.UnprivilegedClone == 0 {
		m.causes = append(m.causes, "kernel.unprivileged_userns_clone is 0: unprivileged user namespaces are turned off")
	}
	if f.MaxUserNamespaces == 0 {
		m.causes = append(m.causes, "user.max_user_namespaces is 0: no user namespaces may be created")
	} else if errors.Is(sp.Err, syscall.ENOSPC) {
		m.causes = append(m.causes, fmt.Sprintf("user.max_user_namespaces is %d and that many are in use", f.MaxUserNamespaces))
	}
	if f.AppArmorRestrict == 1 {
		m.causes = append(m.causes, "kernel.apparmor_restrict_unprivileged_userns is 1 (AppArmor restricts unprivileged user namespaces)")
	}
	m.fixes = f.CloneFixes(sp.Err)
	if f.AppArmorRestrict == 1 {
		exe, _ := os.Executable()
		m.fixes = append(m.fixes, preflight.AppArmorFixes(exe)...)
	}
	if len(m.causes) == 0 {
		m.causes = []string{"no sysctl explains it; a seccomp filter or a container around this shell may forbid clone(CLONE_NEWUSER)"}
	}
	m.fixes = append(m.fixes, "sandbox doctor")
	return m
}

func explainChild(ce *userns.ChildError, facts func() preflight.UsernsFacts) *message {
	switch {
	case ce.Stage == userns.StageExec && ce.Op == "exec":
		switch ce.Errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			return &message{summary: fmt.Sprintf("command not found: %s", ce.Path), code: 127,
				causes: []string{"a host-tool sandbox shows the host's /usr, /bin, /sbin, /lib*, /etc, /opt and the current directory; an image or --rootfs run shows only its own files"},
				fixes:  []string{"give the full path of a program inside the sandbox, or add its directory with -v DIR:DIR:ro"}}
		case syscall.EACCES, syscall.ENOEXEC, syscall.EPERM, syscall.EISDIR:
			return &message{summary: fmt.Sprintf("cannot execute %s: %s", ce.Path, errText(ce.Errno)), code: 126,
				fixes: []string{"chmod +x " + shellQuote(ce.Path) + " (on the host)", "run it through its interpreter: sandbox run -- sh " + shellQuote(ce.Path)}}
		}
	case ce.Op == "workdir":
		return &message{summary: fmt.Sprintf("cannot use working directory %s: %s", ce.Path, errText(ce.Errno)),
			causes: []string{"it does not exist or is not reachable inside the sandbox"},
			fixes:  []string{"sandbox run -w DIR ... with a directory inside the sandbox", "bind it: -v " + ce.Path + ":" + ce.Path}}
	case ce.Op == "confine init" && ce.Errno == syscall.ENOTSUP:
		return &message{summary: "cannot grant CAP_SYS_PTRACE: this sandbox binary was built with cgo",
			causes: []string{"a command that may ptrace has to find the sandbox's init confined on every thread, which needs a cgo-free build"},
			fixes:  []string{"rebuild: CGO_ENABLED=0 go build ./cmd/sandbox (or make build)", "drop --cap-add SYS_PTRACE"}}
	case ce.Op == "mount point" && ce.Detail != "" && strings.Contains(ce.Detail, "symbolic link in the root image"):
		return &message{summary: fmt.Sprintf("refusing the root: %s is a symbolic link in it", ce.Path),
			causes: []string{"the kernel's " + ce.Path + " would be mounted where the link points, outside the paths the sandbox masks"},
			fixes:  []string{"replace the link with a directory in the image or root directory"}}
	case ce.KernelOverlay:
		return &message{summary: fmt.Sprintf("the kernel refused the image's overlay root (%s %s): %s", ce.Op, ce.Path, errText(childCause(ce))),
			causes: []string{"kernel overlayfs inside a user namespace needs Linux 5.11 or later, and the store on a file system overlayfs accepts as a layer (not NFS or an overlay)"},
			fixes:  []string{"sandbox run --overlay=fuse ... (fuse-overlayfs serves the root instead; overlay = \"fuse\" in ~/.config/sandbox/images.toml makes it the default)", "sandbox doctor"}}
	case ce.Path == "/dev/fuse" || ce.Op == "create fuse root" || ce.Op == "fuse option":
		return &message{summary: fmt.Sprintf("cannot mount a fuse-overlayfs root: %s %s: %s", ce.Op, ce.Path, errText(childCause(ce))),
			causes: []string{"the sandbox mounts FUSE inside its user namespace, which needs /dev/fuse readable and writable by you"},
			fixes:  []string{"sandbox doctor (checks /dev/fuse)", "sandbox run --overlay=kernel ..."}}
	case ce.Op == "root layer":
		return &message{summary: fmt.Sprintf("cannot assemble the root from %s: %s", ce.Path, errText(childCause(ce))),
			causes: []string{"the root is a kernel overlay of the image's layers inside the sandbox's user namespace (Linux 6.8 or later)"},
			fixes:  []string{"sandbox doctor", "sandbox run --debug ... shows each stage"}}
	case ce.Op == "bind source":
		return &message{summary: fmt.Sprintf("cannot bind %s: %s", ce.Path, errText(ce.Errno)),
			causes: []string{"it disappeared or changed between the check and the mount"}}
	}
	m := &message{summary: fmt.Sprintf("sandbox set-up failed at %s: %s", ce.Stage, ce.Error())}
	if (ce.Errno == syscall.EPERM || ce.Errno == syscall.EACCES) && facts().AppArmorRestrict == 1 {
		exe, _ := os.Executable()
		m.causes = append(m.causes, "kernel.apparmor_restrict_unprivileged_userns is 1: AppArmor takes capabilities away inside user namespaces")
		m.fixes = append(m.fixes, preflight.AppArmorFixes(exe)...)
	}
	m.fixes = append(m.fixes, "sandbox doctor")
	return m
}

// childCause is what went wrong in ce: its errno, else its detail.
func childCause(ce *userns.ChildError) error {
	if ce.Errno != 0 {
		return ce.Errno
	}
	return errors.New(ce.Detail)
}

// errText is an error's text without Go's wrapping, for a summary line.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

func trimDots(s string) string {
	for len(s) > 0 && (s[0] == '.' || s[0] == '/') {
		s = s[1:]
	}
	return s
}

func shellQuote(s string) string {
	for _, r := range s {
		if !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
