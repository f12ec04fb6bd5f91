package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/idmap"
	"sandbox/preflight"
	"sandbox/prespawn"
	"sandbox/rundir"
	"sandbox/seccomp"
	"sandbox/spec"
	"sandbox/storeclient"
)

const infoUsage = `Usage: sandbox info [OPTIONS]

Show which mode each capability would use if a sandbox started now: id
mapping, root file system, network, resource limits and the runtime
directory. 'sandbox doctor' says how to get the better modes.

Options:
`

// Modes of the id mapping, network and limits, as info reports them.
const (
	idmapSubIDs     = "subids"
	idmapSingle     = "single"
	rootfsHostBinds = "host binds"
	networkNone     = "none"
	unavailable     = "unavailable"
)

// infoReport is what info prints; with --format json its keys are stable.
type infoReport struct {
	IDMapping  infoIDMapping  `json:"id_mapping"`
	Rootfs     infoRootfs     `json:"rootfs"`
	Network    infoNetwork    `json:"network"`
	Limits     infoLimits     `json:"limits"`
	RuntimeDir infoRuntimeDir `json:"runtime_dir"`
	Security   infoSecurity   `json:"security"`
	Prespawn   infoPrespawn   `json:"prespawn"`
}

// infoPrespawn is where pre-spawners keep their sockets and how many serve
// now (one per context: executable, confinement, limits, spawn settings).
type infoPrespawn struct {
	Dir     string `json:"dir"`
	OK      bool   `json:"ok"`
	Reason  string `json:"reason"` // why the directory is not used
	Serving int    `json:"serving"`
}

type infoIDMapping struct {
	Mode    string        `json:"mode"`   // "subids" or "single"
	Reason  string        `json:"reason"` // why "single"; "" for "subids"
	UIDMap  []infoMapping `json:"uid_map"`
	GIDMap  []infoMapping `json:"gid_map"`
	SubUIDs []infoRange   `json:"subuids"`
	SubGIDs []infoRange   `json:"subgids"`
}

type infoMapping struct {
	Inside uint32 `json:"inside"`
	Host   uint32 `json:"host"`
	Count  uint32 `json:"count"`
}

type infoRange struct {
	Start uint32 `json:"start"`
	Count uint32 `json:"count"`
}

type infoRootfs struct {
	Host   string `json:"host"`   // host-tool sandboxes: "host binds"
	Images string `json:"images"` // "kernel overlay", "fuse-overlayfs" or "none"
	Reason string `json:"reason"` // why images do not get kernel overlay
}

type infoNetwork struct {
	Mode      string   `json:"mode"`      // "none": loopback only
	Available []string `json:"available"` // helpers found for later: pasta, slirp4netns
}

type infoLimits struct {
	Mode   string `json:"mode"` // "systemd user manager" or "unavailable"
	Reason string `json:"reason"`
}

// infoSecurity is the lock-down every default run gets.
type infoSecurity struct {
	Seccomp      string   `json:"seccomp"`      // "default allowlist"
	Instructions int      `json:"instructions"` // size of the compiled default filter
	NoNewPrivs   bool     `json:"no_new_privs"`
	Bounding     []string `json:"bounding_capabilities"`
}

type infoRuntimeDir struct {
	Path   string `json:"path"` // $XDG_RUNTIME_DIR, "" when unset
	OK     bool   `json:"ok"`
	Reason string `json:"reason"` // what is wrong with it when not OK
}

func cmdInfo(e *env, args []string) (int, error) {
	format, err := parseReportFlags(e, "info", infoUsage, args)
	if err != nil {
		return 0, err
	}
	o := hostOptions(e)
	facts := preflight.Gather(context.Background(), o)
	d := idmap.Decide(o.PathEnv, o.User, o.UID, o.GID)
	// A configuration file that cannot be read fails the runs that read
	// it, with its own message; here it only does not choose.
	overlay, _ := storeclient.Overlay(storeclient.ConfigPath(os.Getenv("XDG_CONFIG_HOME"), os.Getenv("HOME")))
	r := buildInfo(facts, d, overlay)
	r.Prespawn = probePrespawn()
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return 0, enc.Encode(r)
	}
	return 0, writeInfoText(e.stdout, r)
}

// buildInfo puts the probes' facts and the id-mapping decision into the
// report. It is pure.
func buildInfo(f *preflight.Facts, d idmap.Decision, overlay string) infoReport {
	var r infoReport

	r.IDMapping = infoIDMapping{
		Mode:    idmapSubIDs,
		UIDMap:  mappings(d.UIDs),
		GIDMap:  mappings(d.GIDs),
		SubUIDs: ranges(d.SubUIDs),
		SubGIDs: ranges(d.SubGIDs),
	}
	if !d.Full {
		r.IDMapping.Mode = idmapSingle
		if d.Reason != nil {
			r.IDMapping.Reason = describe(d.Reason).summary
		}
	}

	images, why := f.ImageRootfsWith(overlay)
	r.Rootfs = infoRootfs{Host: rootfsHostBinds, Images: images, Reason: why}

	r.Network = infoNetwork{Mode: networkNone, Available: f.Networks()}
	if r.Network.Available == nil {
		r.Network.Available = []string{}
	}

	if ok, why := f.Limits(); ok {
		r.Limits = infoLimits{Mode: preflight.LimitsVia}
	} else {
		r.Limits = infoLimits{Mode: unavailable, Reason: why}
	}

	r.Security = infoSecurity{Seccomp: "default allowlist", NoNewPrivs: true, Bounding: spec.DefaultCaps}
	if prog, err := seccomp.Compile(seccomp.Default(seccomp.Options{})); err == nil {
		r.Security.Instructions = len(prog)
	} else {
		r.Security.Seccomp = "unavailable: " + err.Error()
	}

	r.RuntimeDir.Path = f.RuntimeDir.Path
	for _, c := range preflight.Evaluate(f) {
		if c.Name == "runtime-dir" {
			r.RuntimeDir.OK = c.OK
			if !c.OK {
				r.RuntimeDir.Reason = c.Detail
			}
		}
	}
	return r
}

func mappings(ms []specs.LinuxIDMapping) []infoMapping {
	out := make([]infoMapping, len(ms))
	for i, m := range ms {
		out[i] = infoMapping{Inside: m.ContainerID, Host: m.HostID, Count: m.Size}
	}
	return out
}

func ranges(rs []idmap.Range) []infoRange {
	out := make([]infoRange, len(rs))
	for i, r := range rs {
		out[i] = infoRange{Start: r.Start, Count: r.Count}
	}
	return out
}

// writeInfoText prints the report as a two-column table.
func writeInfoText(w io.Writer, r infoReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }

	switch {
	case r.IDMapping.Mode == idmapSubIDs:
		row("id mapping", fmt.Sprintf("%s (uids %s; gids %s)", idmapSubIDs, spans(r.IDMapping.SubUIDs), spans(r.IDMapping.SubGIDs)))
	case r.IDMapping.Reason != "":
		row("id mapping", idmapSingle+": "+r.IDMapping.Reason)
	default:
		row("id mapping", idmapSingle)
	}

	row("root (host tools)", r.Rootfs.Host)
	if r.Rootfs.Reason != "" {
		row("root (images)", r.Rootfs.Images+": "+r.Rootfs.Reason)
	} else {
		row("root (images)", r.Rootfs.Images)
	}

	net := "none (loopback only)"
	if len(r.Network.Available) > 0 {
		net += "; available: " + strings.Join(r.Network.Available, ", ")
	} else {
		net += "; neither pasta nor slirp4netns is installed"
	}
	row("network", net)

	if r.Limits.Reason != "" {
		row("limits", r.Limits.Mode+": "+r.Limits.Reason)
	} else {
		row("limits", r.Limits.Mode)
	}

	row("security", fmt.Sprintf("seccomp %s (%d BPF instructions), no_new_privs, bounding set %s",
		r.Security.Seccomp, r.Security.Instructions, strings.Join(r.Security.Bounding, " ")))

	switch {
	case r.RuntimeDir.OK:
		row("runtime dir", r.RuntimeDir.Path)
	default:
		row("runtime dir", unavailable+": "+r.RuntimeDir.Reason)
	}

	switch {
	case !r.Prespawn.OK:
		row("start", "direct: "+r.Prespawn.Reason)
	case r.Prespawn.Serving == 0:
		row("start", "direct now; the next run starts a pre-spawner in "+r.Prespawn.Dir)
	default:
		row("start", fmt.Sprintf("pre-spawned: %d pre-spawner(s) serving in %s", r.Prespawn.Serving, r.Prespawn.Dir))
	}
	return tw.Flush()
}

// probePrespawn checks the pre-spawners' directory and counts the
// sockets that answer.
func probePrespawn() infoPrespawn {
	uid := os.Getuid()
	p := infoPrespawn{Dir: rundir.Path(uid, os.Getenv("XDG_RUNTIME_DIR"))}
	dir, err := rundir.Open(p.Dir, uid)
	if err != nil {
		p.Reason = err.Error()
		return p
	}
	defer dir.Close()
	p.OK = true
	p.Serving = prespawn.Serving(dir)
	return p
}

// spans renders ranges as first-last, comma-separated.
func spans(rs []infoRange) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d-%d", r.Start, uint64(r.Start)+uint64(r.Count)-1)
	}
	return strings.Join(parts, ", ")
}
