package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/idmap"
	"sandbox/preflight"
)

// fullHost is a login session on a host where every mode is the best.
func fullHost() (*preflight.Facts, idmap.Decision) {
	f := &preflight.Facts{
		User: "ada", UID: 1000, GID: 1000,
		Mounts:        preflight.MountFacts{Dir: "/tmp", FSType: "ext4", Ran: true},
		FuseOverlayfs: preflight.Tool{Name: "fuse-overlayfs", Path: "/usr/bin/fuse-overlayfs"},
		Pasta:         preflight.Tool{Name: "pasta", Path: "/usr/bin/pasta"},
		Slirp4netns:   preflight.Tool{Name: "slirp4netns", Path: "/usr/bin/slirp4netns"},
		Cgroup:        preflight.CgroupFacts{Layout: preflight.CgroupUnified, V2Mount: "/sys/fs/cgroup"},
		Systemd:       preflight.SystemdFacts{Booted: true, UserSocket: "/run/user/1000/systemd/private", Linger: true},
		RuntimeDir:    preflight.RuntimeDirFacts{Path: "/run/user/1000", IsDir: true, Owner: 1000, Perm: 0o700},
	}
	d := idmap.Decision{
		Full:    true,
		SubUIDs: []idmap.Range{{Start: 100000, Count: 65536}},
		SubGIDs: []idmap.Range{{Start: 100000, Count: 65536}, {Start: 300000, Count: 10}},
		UIDs: []specs.LinuxIDMapping{
			{ContainerID: 0, HostID: 100000, Size: 1000},
			{ContainerID: 1000, HostID: 1000, Size: 1},
			{ContainerID: 1001, HostID: 101000, Size: 64536},
		},
		GIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	return f, d
}

func TestInfoText(t *testing.T) {
	tests := []struct {
		name     string
		change   func(f *preflight.Facts, d *idmap.Decision)
		prespawn infoPrespawn
		want     string
	}{
		{
			name:     "best modes",
			change:   func(*preflight.Facts, *idmap.Decision) {},
			prespawn: infoPrespawn{Dir: "/run/user/1000/sandbox", OK: true, Serving: 2},
			want: `id mapping         subids (uids 100000-165535; gids 100000-165535, 300000-300009)
root (host tools)  host binds
root (images)      kernel overlay
network            none (loopback only); available: pasta, slirp4netns
limits             systemd user manager
security           seccomp default allowlist (96 BPF instructions), no_new_privs, bounding set CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_NET_BIND_SERVICE CAP_SETFCAP CAP_SETGID CAP_SETPCAP CAP_SETUID CAP_SYS_CHROOT
runtime dir        /run/user/1000
start              pre-spawned: 2 pre-spawner(s) serving in /run/user/1000/sandbox
`,
		},
		{
			name: "fallbacks, as on this project's VM",
			change: func(f *preflight.Facts, d *idmap.Decision) {
				*d = idmap.Decision{
					Reason: &idmap.HelperMissingError{Name: "newuidmap", Searched: []string{"/usr/bin"}},
					UIDs:   []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 1000, Size: 1}},
					GIDs:   []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 1000, Size: 1}},
				}
				f.Mounts.Overlay = &preflight.StepError{Step: "overlay", Errno: syscall.EPERM}
				f.Pasta, f.Slirp4netns = preflight.Tool{Name: "pasta"}, preflight.Tool{Name: "slirp4netns"}
				f.Cgroup = preflight.CgroupFacts{Layout: preflight.CgroupHybrid}
				f.Systemd = preflight.SystemdFacts{}
				f.RuntimeDir = preflight.RuntimeDirFacts{Owner: -1}
			},
			prespawn: infoPrespawn{Dir: "/tmp/sandbox-1000", Reason: "private directory /tmp/sandbox-1000: owned by uid 1001, not 1000"},
			want: `id mapping         single: ` + describe(&idmap.HelperMissingError{Name: "newuidmap", Searched: []string{"/usr/bin"}}).summary + `
root (host tools)  host binds
root (images)      fuse-overlayfs: kernel overlay failed: overlay: operation not permitted
network            none (loopback only); neither pasta nor slirp4netns is installed
limits             unavailable: cgroup layout is hybrid, limits need cgroup v2
security           seccomp default allowlist (96 BPF instructions), no_new_privs, bounding set CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_NET_BIND_SERVICE CAP_SETFCAP CAP_SETGID CAP_SETPCAP CAP_SETUID CAP_SYS_CHROOT
runtime dir        unavailable: XDG_RUNTIME_DIR is not set
start              direct: private directory /tmp/sandbox-1000: owned by uid 1001, not 1000
`,
		},
		{
			name:     "no pre-spawner yet",
			change:   func(*preflight.Facts, *idmap.Decision) {},
			prespawn: infoPrespawn{Dir: "/run/user/1000/sandbox", OK: true},
			want: `id mapping         subids (uids 100000-165535; gids 100000-165535, 300000-300009)
root (host tools)  host binds
root (images)      kernel overlay
network            none (loopback only); available: pasta, slirp4netns
limits             systemd user manager
security           seccomp default allowlist (96 BPF instructions), no_new_privs, bounding set CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_NET_BIND_SERVICE CAP_SETFCAP CAP_SETGID CAP_SETPCAP CAP_SETUID CAP_SYS_CHROOT
runtime dir        /run/user/1000
start              direct now; the next run starts a pre-spawner in /run/user/1000/sandbox
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, d := fullHost()
			tt.change(f, &d)
			var out bytes.Buffer
			r := buildInfo(f, d, "")
			r.Prespawn = tt.prespawn
			if err := writeInfoText(&out, r); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestInfoJSON(t *testing.T) {
	f, d := fullHost()
	b, err := json.Marshal(buildInfo(f, d, ""))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	wantKeys := map[string][]string{
		"id_mapping":  {"gid_map", "mode", "reason", "subgids", "subuids", "uid_map"},
		"rootfs":      {"host", "images", "reason"},
		"network":     {"available", "mode"},
		"limits":      {"mode", "reason"},
		"runtime_dir": {"ok", "path", "reason"},
		"security":    {"bounding_capabilities", "instructions", "no_new_privs", "seccomp"},
		"prespawn":    {"dir", "ok", "reason", "serving"},
	}
	if len(got) != len(wantKeys) {
		t.Errorf("top-level keys = %v", got)
	}
	for section, keys := range wantKeys {
		var have []string
		for k := range got[section] {
			have = append(have, k)
		}
		for _, k := range keys {
			if _, ok := got[section][k]; !ok {
				t.Errorf("%s lacks %q (has %v)", section, k, have)
			}
		}
		if len(have) != len(keys) {
			t.Errorf("%s keys = %v, want %v", section, have, keys)
		}
	}
	if got["id_mapping"]["mode"] != "subids" || got["network"]["mode"] != "none" || got["limits"]["mode"] != "systemd user manager" {
		t.Errorf("modes = %v", got)
	}
	var r infoReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	wantUIDs := []infoMapping{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}}
	if !reflect.DeepEqual(r.IDMapping.UIDMap, wantUIDs) {
		t.Errorf("uid_map = %+v, want %+v", r.IDMapping.UIDMap, wantUIDs)
	}

	// Empty lists are [], not null, so consumers need no special case.
	f.Pasta, f.Slirp4netns = preflight.Tool{}, preflight.Tool{}
	d = idmap.Decision{Reason: &idmap.NoRangeError{Kind: idmap.UID, User: "ada", ID: 1000, File: "/etc/subuid"}}
	b, _ = json.Marshal(buildInfo(f, d, ""))
	for _, want := range []string{`"available":[]`, `"subuids":[]`, `"uid_map":[]`, `"mode":"single"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}
