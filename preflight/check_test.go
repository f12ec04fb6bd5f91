package preflight

import (
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"sandbox/idmap"
)

// goodFacts is a host where everything works: Ubuntu without the AppArmor
// restriction, cgroup v2 delegated by systemd, a login session.
func goodFacts() *Facts {
	return &Facts{
		User: "ada", UID: 1000, GID: 1000,
		Executable:    "/usr/bin/sandbox",
		Distro:        Distro{ID: "ubuntu", Like: []string{"debian"}},
		Kernel:        "6.8.0-45-generic",
		Userns:        UsernsFacts{MaxUserNamespaces: 63000, UnprivilegedClone: 1, AppArmorRestrict: 0},
		Mounts:        MountFacts{Dir: "/tmp", FSType: "ext4", Ran: true, OverlayOptions: "userxattr"},
		FuseOverlayfs: Tool{Name: "fuse-overlayfs", Path: "/usr/bin/fuse-overlayfs", Version: "fuse-overlayfs: version 1.13"},
		Nsenter:       Tool{Name: "nsenter", Path: "/usr/bin/nsenter", Version: "nsenter from util-linux 2.38.1"},
		Pasta:         Tool{Name: "pasta", Path: "/usr/bin/pasta", Version: "pasta 2024_06_24"},
		Slirp4netns:   Tool{Name: "slirp4netns", Path: "/usr/bin/slirp4netns", Version: "slirp4netns version 1.2.1"},
		Helpers:       idmap.Helpers{NewUIDMap: "/usr/bin/newuidmap", NewGIDMap: "/usr/bin/newgidmap"},
		SubUIDs:       SubIDFacts{Ranges: []idmap.Range{{Start: 100000, Count: 65536}}, Source: "/etc/subuid"},
		SubGIDs:       SubIDFacts{Ranges: []idmap.Range{{Start: 100000, Count: 65536}}, Source: "/etc/subgid"},
		FreeSubID:     165536,
		Cgroup: CgroupFacts{
			Layout: CgroupUnified, V2Mount: "/sys/fs/cgroup",
			Own:         "/user.slice/user-1000.slice/session-2.scope",
			Delegated:   "/user.slice/user-1000.slice/user@1000.service",
			Controllers: []string{"cpuset", "cpu", "io", "memory", "pids"},
		},
		CgroupFSType: "cgroup2",
		Systemd:      SystemdFacts{Booted: true, UserSocket: "/run/user/1000/systemd/private", Linger: true},
		RuntimeDir:   RuntimeDirFacts{Path: "/run/user/1000", IsDir: true, Owner: 1000, Perm: 0o700},
	}
}

var checkNames = []string{
	"userns", "userns-mount", "overlay", "fuse", "fuse-overlayfs", "nsenter",
	"uidmap", "subuid", "subgid", "pasta", "slirp4netns",
	"cgroup2", "cgroup-delegation", "systemd-user", "runtime-dir", "linger",
}

func TestEvaluateGoodHost(t *testing.T) {
	checks := Evaluate(goodFacts())
	var names []string
	for _, c := range checks {
		names = append(names, c.Name)
		if !c.OK {
			t.Errorf("%s: not OK on a good host: %s", c.Name, c.Detail)
		}
		if c.Detail == "" {
			t.Errorf("%s: no detail", c.Name)
		}
		if len(c.Fixes) > 0 {
			t.Errorf("%s: OK with fixes %q", c.Name, c.Fixes)
		}
		if want := c.Name == "userns" || c.Name == "userns-mount"; c.Required != want {
			t.Errorf("%s: Required = %v, want %v", c.Name, c.Required, want)
		}
	}
	if !reflect.DeepEqual(names, checkNames) {
		t.Errorf("names = %q, want %q", names, checkNames)
	}
	if r, w := Failed(checks); r != 0 || w != 0 {
		t.Errorf("Failed = %d, %d", r, w)
	}
}

func TestEvaluateProblems(t *testing.T) {
	eperm := &CloneError{Flags: "CLONE_NEWUSER|CLONE_NEWNS", Err: syscall.EPERM}
	tests := []struct {
		name   string
		change func(f *Facts)
		check  string
		detail []string // substrings of the failing check's detail
		fixes  []string // nil: no fixes
		others []string // further checks that must fail as a consequence
	}{
		{
			name: "max_user_namespaces is 0",
			change: func(f *Facts) {
				f.Userns.MaxUserNamespaces = 0
				f.CloneErr = eperm
				f.Mounts = MountFacts{Err: eperm}
			},
			check:  "userns",
			detail: []string{"cannot create a user namespace", "EPERM", "user.max_user_namespaces is 0"},
			fixes:  []string{"sudo sysctl -w user.max_user_namespaces=15000"},
			others: []string{"userns-mount", "overlay"},
		},
		{
			name: "debian's unprivileged_userns_clone",
			change: func(f *Facts) {
				f.Distro = Distro{ID: "debian"}
				f.Userns.UnprivilegedClone = 0
				f.CloneErr = eperm
			},
			check:  "userns",
			detail: []string{"kernel.unprivileged_userns_clone is 0"},
			fixes:  []string{"sudo sysctl -w kernel.unprivileged_userns_clone=1"},
			others: []string{"userns-mount", "overlay"},
		},
		{
			name:   "refused by a container's seccomp filter",
			change: func(f *Facts) { f.CloneErr = eperm },
			check:  "userns",
			detail: []string{"no sysctl forbids it"},
			others: []string{"userns-mount", "overlay"},
		},
		{
			name:   "no /proc",
			change: func(f *Facts) { f.CloneErr = &CloneError{Flags: "x", Err: syscall.ENOENT} },
			check:  "userns",
			detail: []string{"cannot start /proc/self/exe", "is /proc mounted?"},
			others: []string{"userns-mount", "overlay"},
		},
		{
			name: "ubuntu 24.04 apparmor restriction",
			change: func(f *Facts) {
				f.Userns.AppArmorRestrict = 1
				f.Mounts = MountFacts{Dir: "/tmp", Ran: true, Mount: &StepError{Step: "tmpfs", Errno: syscall.EPERM}, Overlay: errNotReached}
			},
			check:  "userns-mount",
			detail: []string{"mounting inside a user namespace failed", "tmpfs: operation not permitted", "apparmor_restrict_unprivileged_userns is 1"},
			fixes:  AppArmorFixes("/usr/bin/sandbox"),
			others: []string{"overlay"},
		},
		{
			name: "old kernel: no overlay in a user namespace",
			change: func(f *Facts) {
				f.Kernel = "5.4.0-150-generic"
				f.Mounts.Overlay = &StepError{Step: "overlay", Errno: syscall.EPERM}
			},
			check:  "overlay",
			detail: []string{"kernel overlayfs in a user namespace failed on /tmp (ext4)", "Linux 5.4.0-150-generic is older than 5.11", "fuse-overlayfs"},
		},
		{
			name:   "no fuse module",
			change: func(f *Facts) { f.FuseErr = fmt.Errorf("open: %w", syscall.ENOENT) },
			check:  "fuse",
			detail: []string{"cannot open /dev/fuse: ENOENT"},
			fixes:  []string{"sudo modprobe fuse"},
		},
		{
			name:   "fuse device not for everyone",
			change: func(f *Facts) { f.FuseErr = syscall.EACCES },
			check:  "fuse",
			fixes:  []string{"sudo chmod 0666 /dev/fuse"},
		},
		{
			name:   "fuse-overlayfs missing on fedora",
			change: func(f *Facts) { f.Distro = Distro{ID: "fedora"}; f.FuseOverlayfs.Path = "" },
			check:  "fuse-overlayfs",
			detail: []string{"not found on PATH"},
			fixes:  []string{"sudo dnf install fuse-overlayfs"},
		},
		{
			name:   "pasta missing",
			change: func(f *Facts) { f.Pasta = Tool{Name: "pasta"} },
			check:  "pasta",
			fixes:  []string{"sudo apt-get install passt"},
		},
		{
			name:   "slirp4netns broken",
			change: func(f *Facts) { f.Slirp4netns.Err = fmt.Errorf("exit status 127") },
			check:  "slirp4netns",
			detail: []string{"does not run: exit status 127"},
			fixes:  []string{"sudo apt-get install slirp4netns"},
		},
		{
			name: "no uidmap package",
			change: func(f *Facts) {
				f.Helpers = idmap.Helpers{}
				f.HelpersErr = &idmap.HelperMissingError{Name: "newuidmap", Searched: []string{"/usr/bin", "/bin"}}
			},
			check:  "uidmap",
			detail: []string{"newuidmap not found in /usr/bin:/bin", "only your own ids"},
			fixes:  []string{"sudo apt-get install uidmap"},
		},
		{
			name:   "helper lost its setuid bit",
			change: func(f *Facts) { f.HelpersErr = &idmap.HelperNotPrivilegedError{Path: "/usr/bin/newgidmap"} },
			check:  "uidmap",
			fixes:  []string{"sudo chown root:root /usr/bin/newgidmap && sudo chmod u+s /usr/bin/newgidmap"},
		},
		{
			name: "no ranges at all",
			change: func(f *Facts) {
				f.SubUIDs = SubIDFacts{Source: "/etc/subuid", Err: &idmap.NoRangeError{Kind: idmap.UID, User: "ada", ID: 1000, File: "/etc/subuid"}}
				f.SubGIDs = SubIDFacts{Source: "/etc/subgid", Err: &idmap.NoRangeError{Kind: idmap.GID, User: "ada", ID: 1000, File: "/etc/subgid"}}
			},
			check:  "subuid",
			detail: []string{`no subordinate uid range for user "ada"`},
			fixes:  []string{"sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 ada"},
			others: []string{"subgid"},
		},
		{
			name: "small gid range only",
			change: func(f *Facts) {
				f.SubGIDs.Ranges = []idmap.Range{{Start: 100000, Count: 1000}}
			},
			check:  "subgid",
			detail: []string{"100000-100999 from /etc/subgid: 1000 ids, fewer than 65536"},
			fixes:  []string{"sudo usermod --add-subgids 165536-231071 ada"},
		},
		{
			name: "malformed subuid",
			change: func(f *Facts) {
				f.SubUIDs = SubIDFacts{Source: "/etc/subuid", Err: &idmap.ParseError{File: "/etc/subuid", Line: 3, Text: "ada:1"}}
			},
			check:  "subuid",
			detail: []string{"/etc/subuid line 3"},
			fixes:  []string{"sudoedit /etc/subuid"},
		},
		{
			name:   "unknown user name",
			change: func(f *Facts) { f.User = ""; f.SubUIDs = SubIDFacts{Err: fmt.Errorf("no range")} },
			check:  "subuid",
			fixes:  []string{"sudo usermod --add-subuids 165536-231071 $(id -un)"},
		},
		{
			name: "hybrid cgroups under systemd",
			change: func(f *Facts) {
				f.Distro = Distro{ID: "debian"}
				f.Cgroup = CgroupFacts{Layout: CgroupHybrid, V2Mount: "/sys/fs/cgroup/unified", Own: "/"}
			},
			check:  "cgroup2",
			detail: []string{"hybrid", "/sys/fs/cgroup/unified", "own cgroup /"},
			fixes:  []string{`sudo sed -i 's/^GRUB_CMDLINE_LINUX="/&systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub && sudo update-grub && sudo reboot`},
			others: []string{"cgroup-delegation"},
		},
		{
			name: "legacy cgroups on fedora",
			change: func(f *Facts) {
				f.Distro = Distro{ID: "fedora"}
				f.Cgroup = CgroupFacts{Layout: CgroupLegacy}
			},
			check:  "cgroup2",
			fixes:  []string{"sudo grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1 && sudo reboot"},
			others: []string{"cgroup-delegation"},
		},
		{
			name: "hybrid cgroups without systemd",
			change: func(f *Facts) {
				f.Cgroup = CgroupFacts{Layout: CgroupHybrid, V2Mount: "/sys/fs/cgroup/unified"}
				f.Systemd = SystemdFacts{}
			},
			check:  "cgroup2",
			detail: []string{"systemd is not PID 1"},
			others: []string{"cgroup-delegation", "systemd-user", "linger"},
		},
		{
			name:   "memory not delegated",
			change: func(f *Facts) { f.Cgroup.Controllers = []string{"pids"} },
			check:  "cgroup-delegation",
			detail: []string{"cpu memory not delegated to /user.slice/user-1000.slice/user@1000.service (it has: pids)"},
			fixes:  []string{delegateFix},
		},
		{
			name: "no user manager",
			change: func(f *Facts) {
				f.Cgroup.Controllers = nil
				f.Cgroup.ControllersErr = &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
				f.Systemd.UserSocket = ""
				f.Systemd.Linger = false
			},
			check:  "cgroup-delegation",
			detail: []string{"cannot read the controllers of /user.slice/user-1000.slice/user@1000.service", "not running"},
			fixes:  []string{"sudo loginctl enable-linger ada"},
			others: []string{"systemd-user", "linger"},
		},
		{
			name:   "su session without a user manager",
			change: func(f *Facts) { f.Systemd.UserSocket = "" },
			check:  "systemd-user",
			detail: []string{"no socket at /run/user/1000/systemd/private or /run/user/1000/bus"},
			fixes:  []string{"sudo loginctl enable-linger ada", "sudo machinectl shell ada@"},
		},
		{
			name:   "no XDG_RUNTIME_DIR",
			change: func(f *Facts) { f.RuntimeDir = RuntimeDirFacts{Owner: -1}; f.Systemd.UserSocket = "" },
			check:  "runtime-dir",
			detail: []string{"XDG_RUNTIME_DIR is not set"},
			fixes:  []string{"sudo install -d -m 0700 -o 1000 -g 1000 /run/user/1000 && export XDG_RUNTIME_DIR=/run/user/1000"},
			others: []string{"systemd-user"},
		},
		{
			name:   "runtime dir missing",
			change: func(f *Facts) { f.RuntimeDir = RuntimeDirFacts{Path: "/run/user/1000", Owner: -1, Err: fs.ErrNotExist} },
			check:  "runtime-dir",
			fixes:  []string{"sudo install -d -m 0700 -o 1000 -g 1000 /run/user/1000"},
		},
		{
			name:   "someone else's runtime dir after su",
			change: func(f *Facts) { f.RuntimeDir.Path, f.RuntimeDir.Owner = "/run/user/0", 0 },
			check:  "runtime-dir",
			detail: []string{"owned by uid 0, not 1000"},
			fixes:  []string{"sudo install -d -m 0700 -o 1000 -g 1000 /run/user/1000 && export XDG_RUNTIME_DIR=/run/user/1000"},
		},
		{
			name:   "runtime dir too open",
			change: func(f *Facts) { f.RuntimeDir.Path, f.RuntimeDir.Perm = "/tmp/my run", 0o755 },
			check:  "runtime-dir",
			detail: []string{"mode 0755, not 0700"},
			fixes:  []string{"chmod 0700 '/tmp/my run'"},
		},
		{
			name:   "no linger",
			change: func(f *Facts) { f.Systemd.Linger = false },
			check:  "linger",
			fixes:  []string{"sudo loginctl enable-linger ada"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := goodFacts()
			tt.change(f)
			failing := map[string]bool{tt.check: true}
			for _, o := range tt.others {
				failing[o] = true
			}
			for _, c := range Evaluate(f) {
				if c.OK == failing[c.Name] {
					t.Errorf("%s: OK = %v (%s)", c.Name, c.OK, c.Detail)
				}
				if c.Name != tt.check {
					continue
				}
				for _, d := range tt.detail {
					if !strings.Contains(c.Detail, d) {
						t.Errorf("%s: detail %q lacks %q", c.Name, c.Detail, d)
					}
				}
				if !reflect.DeepEqual(c.Fixes, tt.fixes) {
					t.Errorf("%s: fixes =\n %q\nwant\n %q", c.Name, c.Fixes, tt.fixes)
				}
			}
		})
	}
}

func TestRootSeesWhatBlocksOthers(t *testing.T) {
	f := goodFacts()
	f.User, f.UID, f.GID = "root", 0, 0
	f.Userns.UnprivilegedClone = 0
	c := Evaluate(f)[0]
	if !c.OK || !strings.Contains(c.Detail, "kernel.unprivileged_userns_clone is 0, which refuses other users") {
		t.Errorf("userns as root = %+v", c)
	}
}

func TestFailed(t *testing.T) {
	checks := []Check{
		{Name: "a", OK: true, Required: true},
		{Name: "b", Required: true},
		{Name: "c"},
		{Name: "d"},
		{Name: "e", OK: true},
	}
	if r, w := Failed(checks); r != 1 || w != 2 {
		t.Errorf("Failed = %d, %d; want 1, 2", r, w)
	}
}

func TestKernelAtLeast(t *testing.T) {
	tests := []struct {
		release   string
		ok, known bool
	}{
		{"6.18.44-fc-v782", true, true},
		{"5.11.0", true, true},
		{"5.10.0-28-amd64", false, true},
		{"5.4", false, true},
		{"4.19.0", false, true},
		{"5.11rc1", true, true},
		{"", false, false},
		{"linux", false, false},
	}
	for _, tt := range tests {
		ok, known := kernelAtLeast(tt.release, 5, 11)
		if ok != tt.ok || known != tt.known {
			t.Errorf("kernelAtLeast(%q) = %v, %v; want %v, %v", tt.release, ok, known, tt.ok, tt.known)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/run/user/1000": "/run/user/1000",
		"/tmp/a b":       "'/tmp/a b'",
		"it's":           `'it'\''s'`,
		"":               "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		name      string
		change    func(f *Facts)
		rootfs    string
		why       string
		limits    bool
		limitsWhy string
		networks  []string
	}{
		{name: "good host", change: func(*Facts) {}, rootfs: RootfsKernelOverlay, limits: true, networks: []string{"pasta", "slirp4netns"}},
		{
			name:   "old kernel",
			change: func(f *Facts) { f.Mounts.Overlay = &StepError{Step: "overlay", Errno: syscall.EPERM} },
			rootfs: RootfsFuseOverlayfs, why: "kernel overlay failed: overlay: operation not permitted",
			limits: true, networks: []string{"pasta", "slirp4netns"},
		},
		{
			name: "old kernel, no fuse-overlayfs, no pasta",
			change: func(f *Facts) {
				f.Mounts.Overlay = &StepError{Step: "overlay", Errno: syscall.EPERM}
				f.FuseOverlayfs.Path = ""
				f.Pasta.Path = ""
			},
			rootfs: RootfsNone, why: "fuse-overlayfs not found",
			limits: true, networks: []string{"slirp4netns"},
		},
		{
			name: "apparmor: nothing mounts",
			change: func(f *Facts) {
				f.Mounts.Mount = &StepError{Step: "tmpfs", Errno: syscall.EPERM}
				f.Mounts.Overlay = errNotReached
			},
			rootfs: RootfsNone, why: "mounting in a user namespace failed",
			limits: true, networks: []string{"pasta", "slirp4netns"},
		},
		{
			name: "this project's VM",
			change: func(f *Facts) {
				f.Cgroup = CgroupFacts{Layout: CgroupHybrid}
				f.Systemd = SystemdFacts{}
			},
			rootfs: RootfsKernelOverlay,
			limits: false, limitsWhy: "cgroup layout is hybrid, limits need cgroup v2",
			networks: []string{"pasta", "slirp4netns"},
		},
		{
			name:   "no user manager",
			change: func(f *Facts) { f.Systemd.UserSocket = "" },
			rootfs: RootfsKernelOverlay,
			limits: false, limitsWhy: "no systemd user manager reachable",
			networks: []string{"pasta", "slirp4netns"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := goodFacts()
			tt.change(f)
			rootfs, why := f.ImageRootfs()
			if rootfs != tt.rootfs || !strings.Contains(why, tt.why) || (tt.why == "") != (why == "") {
				t.Errorf("ImageRootfs = %q, %q; want %q, %q", rootfs, why, tt.rootfs, tt.why)
			}
			ok, lwhy := f.Limits()
			if ok != tt.limits || lwhy != tt.limitsWhy {
				t.Errorf("Limits = %v, %q; want %v, %q", ok, lwhy, tt.limits, tt.limitsWhy)
			}
			if got := f.Networks(); !reflect.DeepEqual(got, tt.networks) {
				t.Errorf("Networks = %q, want %q", got, tt.networks)
			}
		})
	}
}

// overlay in images.toml picks the mode info reports, and says so; a mode
// the host cannot give is "none" with the reason.
func TestImageRootfsWith(t *testing.T) {
	kernelRefused := func(f *Facts) { f.Mounts.Overlay = &StepError{Step: "overlay", Errno: syscall.EPERM} }
	tests := []struct {
		setting string
		change  func(*Facts)
		mode    string
		why     string
	}{
		{"", func(*Facts) {}, RootfsKernelOverlay, ""},
		{"auto", kernelRefused, RootfsFuseOverlayfs, "kernel overlay failed"},
		{"fuse", func(*Facts) {}, RootfsFuseOverlayfs, `overlay = "fuse" in images.toml`},
		{"fuse", func(f *Facts) { f.FuseOverlayfs.Path = "" }, RootfsNone, "but fuse-overlayfs not found"},
		{"fuse", func(f *Facts) { f.FuseErr = syscall.EACCES }, RootfsNone, "but /dev/fuse"},
		{"kernel", func(*Facts) {}, RootfsKernelOverlay, ""},
		{"kernel", kernelRefused, RootfsNone, `overlay = "kernel" in images.toml, but kernel overlay failed`},
	}
	for _, tt := range tests {
		f := goodFacts()
		tt.change(f)
		mode, why := f.ImageRootfsWith(tt.setting)
		if mode != tt.mode || !strings.Contains(why, tt.why) || (tt.why == "") != (why == "") {
			t.Errorf("%q: ImageRootfsWith = %q, %q; want %q, %q", tt.setting, mode, why, tt.mode, tt.why)
		}
	}
}
