package main

import (
	"errors"
	"fmt"
	"strings"

	"sandbox/rundir"
	"sandbox/storeclient"
	"sandbox/userns"
)

// explainImage covers the image commands: the store helper, and what it
// answers.
func explainImage(err error) *message {
	var (
		se  *storeclient.Error
		mis *storeclient.MissingError
		sp  *storeclient.SpawnError
		me  *storeclient.MapError
		ee  *storeclient.ExitError
		de  *rundir.DirError
		sd  *storeDirError
	)
	switch {
	case errors.As(err, &sd):
		return &message{summary: "cannot " + sd.Error(),
			causes: []string{"sandbox keeps it beside the image store, which must be a directory of yours with room to write"},
			fixes:  []string{"ls -ld " + shellQuote(sd.Dir) + "   (yours, writable?)", "--root DIR, or root = \"DIR\" in ~/.config/sandbox/images.toml   (another store)"}}
	case errors.As(err, &se):
		return explainStoreAnswer(se)
	case errors.As(err, &mis):
		return &message{
			summary: "cannot use the image store: " + storeclient.HelperName + " is missing at " + mis.Path,
			causes:  []string{"the image commands run the store helper that is built and installed next to sandbox"},
			fixes: []string{
				"make build   (builds bin/sandbox and bin/sandbox-store side by side)",
				"install sandbox-store into the directory that holds sandbox",
			},
		}
	case errors.As(err, &me):
		if m := explainIDMap(me.Err); m != nil {
			m.causes = append(m.causes, "the image store helper runs with your subordinate ids mapped")
			return m
		}
		return &message{summary: "cannot map user IDs for the image store: " + errText(me.Err)}
	case errors.As(err, &sp):
		return explainUserns(&userns.SpawnError{Err: sp.Err})
	case errors.As(err, &ee):
		m := &message{summary: "the image store helper failed: " + ee.Error(),
			fixes: []string{"rerun with --debug to see what it did"}}
		if s := strings.TrimSpace(ee.Stdout); s != "" {
			m.causes = []string{"it wrote: " + s}
		}
		return m
	case errors.As(err, &de):
		return &message{summary: "cannot use the image store's run-time directory: " + de.Error(),
			fixes: []string{"--runroot DIR   (a directory only you can enter)", "export XDG_RUNTIME_DIR=/run/user/$(id -u)   (where your login provides one)"}}
	}
	return nil
}

// insecureFix is the way to talk to a registry that has no TLS; it is a
// choice the user must make.
const insecureFix = "--tls-verify=false   (allows plain HTTP; only for a registry you trust on a network you trust)"

func explainStoreAnswer(e *storeclient.Error) *message {
	switch e.Kind {
	case "reference":
		return &message{summary: fmt.Sprintf("invalid image reference %q: %s", e.Ref, e.Reason),
			causes: []string{"nothing was fetched: the name is checked before any network access"},
			fixes:  []string{"write REGISTRY/NAME[:TAG], e.g. docker.io/library/busybox:latest"}}
	case "no-registries":
		return &message{summary: fmt.Sprintf("%q names no registry and the registry search list is empty", e.Ref),
			fixes: []string{"name the registry: sandbox pull docker.io/library/" + e.Ref,
				"sandbox pull --registry docker.io " + e.Ref,
				`put registries = ["docker.io"] in ~/.config/sandbox/images.toml`}}
	case "not-found":
		return &message{summary: fmt.Sprintf("no image %q in the local store", e.Ref),
			fixes: []string{"sandbox images   (lists the images there)", "sandbox pull " + e.Ref}}
	case "layer-rejected":
		return &message{summary: fmt.Sprintf("refusing image: layer %s: entry %q %s", shortID(e.Layer), e.Entry, e.Reason),
			causes: []string{"nothing of the image was stored"},
			fixes:  []string{"use another image: this one cannot be unpacked safely (tell its publisher)"}}
	case "digest-mismatch":
		return &message{summary: fmt.Sprintf("refusing image: blob %s does not match its digest", e.Expected),
			causes: []string{"its content hashes to " + e.Actual + ": damaged in the registry, on the way, or in the archive",
				"nothing of the image was stored"},
			fixes: []string{"pull again; if it fails the same way, the source's copy is damaged"}}
	case "pull":
		m := &message{summary: fmt.Sprintf("cannot pull %s", e.Ref)}
		if len(e.Tried) > 0 {
			m.causes = append(m.causes, "tried "+strings.Join(e.Tried, ", "))
		}
		m.causes = append(m.causes, e.Reason)
		m.fixes = registryFixes(e.Cause, e.Ref)
		if e.Cause == "unauthorized" {
			m.fixes = []string{"sandbox login " + registryOf(e.Tried, e.Ref)}
		}
		return m
	case "registry":
		return &message{summary: e.Message, fixes: registryFixes(e.Cause, "")}
	case "auth":
		m := &message{summary: fmt.Sprintf("cannot log in to %s", e.Registry), causes: []string{e.Reason}}
		if e.Cause == "unauthorized" {
			m.fixes = []string{"check the user name and password"}
		} else {
			m.fixes = registryFixes(e.Cause, "")
		}
		return m
	case "not-logged-in":
		return &message{summary: "not logged in to " + e.Registry,
			fixes: []string{"sandbox logout --authfile FILE " + e.Registry + "   (if the credentials are in another file)"}}
	case "in-use":
		return &message{summary: fmt.Sprintf("image %s is in use by storage container(s) %s", e.Ref, strings.Join(e.Tried, ", ")),
			fixes: []string{"sandbox rmi -f " + e.Ref + "   (removes the containers too)"}}
	case "container-not-found":
		return &message{summary: "no storage container " + e.Ref}
	case "format":
		return &message{summary: fmt.Sprintf("unknown archive format %q", e.Reason),
			fixes: []string{"--format docker-archive", "--format oci-archive"}}
	case "config":
		return &message{summary: fmt.Sprintf("cannot read %s: %s", e.Path, e.Reason),
			causes: []string{`the file knows registries = ["docker.io", ...], root, runroot and overlay = "auto"|"kernel"|"fuse"`},
			fixes:  []string{"edit " + e.Path}}
	case "store":
		return &message{summary: fmt.Sprintf("cannot open the image store at %s: %s", e.Path, e.Reason),
			fixes: []string{"--root DIR   (use another store)"}}
	case "file":
		return &message{summary: fmt.Sprintf("%s: %s", e.Path, e.Reason)}
	case "no-space":
		return &message{summary: fmt.Sprintf("no space left on the file system of the image store %s", e.Path),
			causes: []string{e.Reason, "nothing of the image was stored; the partial layer was removed"},
			fixes: []string{"df -h " + shellQuote(e.Path) + "   (how full it is)", "sandbox rmi IMAGE   (free space taken by images you no longer need)",
				"--root DIR, or root = \"DIR\" in ~/.config/sandbox/images.toml   (a store on a bigger file system)"}}
	case "usage":
		return &message{summary: "internal error: sandbox-store refused its arguments: " + e.Message,
			causes: []string{"sandbox and sandbox-store come from different builds"},
			fixes:  []string{"make build   (builds both)"}}
	}
	return &message{summary: e.Message}
}

func registryFixes(cause, ref string) []string {
	switch cause {
	case "http":
		return []string{insecureFix}
	case "tls":
		return []string{"install the registry's CA certificate", insecureFix}
	case "unauthorized":
		return []string{"sandbox login REGISTRY"}
	case "connection":
		return []string{"check the registry's address and that it is reachable from here"}
	case "not-found":
		if ref != "" {
			return []string{"check the name and tag", "sandbox pull --registry HOST " + ref + "   (search another registry)"}
		}
		return []string{"check the name and tag"}
	}
	return nil
}

// registryOf is the registry of the first name tried, or of ref.
func registryOf(tried []string, ref string) string {
	n := ref
	if len(tried) > 0 {
		n = tried[0]
	}
	first, _, ok := strings.Cut(n, "/")
	if !ok || !strings.ContainsAny(first, ".:") && first != "localhost" {
		return "docker.io"
	}
	return first
}

// singleIDNotice says that every file in the store belongs to the caller,
// and why: a store without subordinate ids works, but differently.
func singleIDNotice(reason error) string {
	why, fix := "no subordinate ids", "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un)"
	if reason != nil {
		why = reason.Error()
		if m := explainIDMap(reason); m != nil {
			why = m.summary
			if len(m.fixes) > 0 && m.fixes[0] != idmapSingleFix {
				fix = m.fixes[0]
			}
		}
	}
	return "sandbox: notice: image store without subordinate ids: layer files all belong to you (ownership collapsed)\n" +
		"  cause: " + why + "\n" +
		"  fix: " + fix
}
