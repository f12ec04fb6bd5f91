package spec

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		reason string // empty: no error
	}{
		{in: "/", want: "/"},
		{in: "/usr/bin", want: "/usr/bin"},
		{in: "/usr//bin/", want: "/usr/bin"},
		{in: "/usr/./bin", want: "/usr/bin"},
		{in: "/a..b/..c", want: "/a..b/..c"},
		{in: "", reason: ReasonEmpty},
		{in: "/a\x00b", reason: ReasonNUL},
		{in: "rel/dir", reason: ReasonNotAbsolute},
		{in: "./x", reason: ReasonNotAbsolute},
		{in: "..", reason: ReasonNotAbsolute},
		{in: "/..", reason: ReasonDotDot},
		{in: "/a/../../etc", reason: ReasonDotDot},
		{in: "/a/..", reason: ReasonDotDot},
		// Clean would turn this into /b, inside the root, but a '..' in
		// what the user wrote is refused rather than reinterpreted.
		{in: "/a/../b", reason: ReasonDotDot},
	}
	for _, tc := range tests {
		got, err := CheckPath("volume destination", tc.in)
		if tc.reason == "" {
			if err != nil || got != tc.want {
				t.Errorf("CheckPath(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
			}
			continue
		}
		var inv *InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("CheckPath(%q) = %q, %v; want *InvalidError", tc.in, got, err)
			continue
		}
		want := InvalidError{Field: "volume destination", Value: tc.in, Reason: tc.reason}
		if *inv != want {
			t.Errorf("CheckPath(%q) error = %+v, want %+v", tc.in, *inv, want)
		}
	}
}

// validSpec is the smallest Spec that passes Validate.
func validSpec() *Spec {
	return &Spec{
		OCI: specs.Spec{
			Process: &specs.Process{Args: []string{"true"}, Cwd: "/", Env: []string{"PATH=/usr/bin", "EMPTY="}},
			Mounts: []specs.Mount{
				{Destination: "/proc", Type: MountProc, Source: "proc", Options: []string{"nosuid", "nodev", "noexec"}},
				{Destination: "/dev", Type: MountTmpfs, Source: "tmpfs", Options: []string{"mode=0755", "size=64k"}},
				{Destination: "/dev/pts", Type: MountDevpts, Source: "devpts", Options: []string{"newinstance", "ptmxmode=0666", "gid=5"}},
				{Destination: "/dev/mqueue", Type: MountMqueue, Source: "mqueue"},
				{Destination: "/usr", Type: MountBind, Source: "/usr", Options: []string{"rbind", "ro", "nosuid"}},
			},
			Linux: &specs.Linux{
				UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}},
				GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			},
		},
		IDMap:    IDMapSubIDs,
		Symlinks: []Symlink{{Target: "usr/bin", Path: "/bin"}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(s *Spec)
		field  string // empty: valid
		value  string
		reason string
	}{
		{name: "valid", edit: func(s *Spec) {}},
		{name: "single map", edit: func(s *Spec) {
			s.IDMap = IDMapSingle
			s.OCI.Linux.UIDMappings = s.OCI.Linux.UIDMappings[:1]
		}},
		{name: "terminal with size", edit: func(s *Spec) {
			s.OCI.Process.Terminal = true
			s.OCI.Process.ConsoleSize = &specs.Box{Width: 80, Height: 24}
		}},
		{name: "no process", edit: func(s *Spec) { s.OCI.Process = nil },
			field: "command", reason: ReasonEmpty},
		{name: "no args", edit: func(s *Spec) { s.OCI.Process.Args = nil },
			field: "command", reason: ReasonEmpty},
		{name: "empty command", edit: func(s *Spec) { s.OCI.Process.Args = []string{""} },
			field: "command", reason: ReasonEmpty},
		{name: "relative workdir", edit: func(s *Spec) { s.OCI.Process.Cwd = "src" },
			field: "workdir", value: "src", reason: ReasonNotAbsolute},
		{name: "empty workdir", edit: func(s *Spec) { s.OCI.Process.Cwd = "" },
			field: "workdir", reason: ReasonEmpty},
		{name: "env without =", edit: func(s *Spec) { s.OCI.Process.Env = []string{"HOME"} },
			field: "env", value: "HOME", reason: "is not NAME=VALUE"},
		{name: "env without name", edit: func(s *Spec) { s.OCI.Process.Env = []string{"=x"} },
			field: "env", value: "=x", reason: "is not NAME=VALUE"},
		{name: "mount destination relative", edit: func(s *Spec) { s.OCI.Mounts[4].Destination = "usr" },
			field: "mount destination", value: "usr", reason: ReasonNotAbsolute},
		{name: "mount destination dotdot", edit: func(s *Spec) { s.OCI.Mounts[4].Destination = "/usr/../etc" },
			field: "mount destination", value: "/usr/../etc", reason: ReasonDotDot},
		{name: "mount destination not clean", edit: func(s *Spec) { s.OCI.Mounts[4].Destination = "/usr/" },
			field: "mount destination", value: "/usr/", reason: "is not clean"},
		{name: "mount on root", edit: func(s *Spec) { s.OCI.Mounts[4].Destination = "/" },
			field: "mount destination", value: "/", reason: ReasonRootMount},
		{name: "mount twice", edit: func(s *Spec) { s.OCI.Mounts[4].Destination = "/dev" },
			field: "mount destination", value: "/dev", reason: ReasonDuplicate},
		{name: "bind source relative", edit: func(s *Spec) { s.OCI.Mounts[4].Source = "usr" },
			field: "bind source", value: "usr", reason: ReasonNotAbsolute},
		{name: "unknown mount type", edit: func(s *Spec) { s.OCI.Mounts[4].Type = "overlay" },
			field: "mount type", value: "overlay", reason: "is not one of bind, tmpfs, proc, devpts, mqueue, sysfs"},
		{name: "unknown mount option", edit: func(s *Spec) { s.OCI.Mounts[4].Options = append(s.OCI.Mounts[4].Options, "suid") },
			field: "mount option", value: "suid", reason: "is not supported"},
		{name: "unknown mount option with value", edit: func(s *Spec) { s.OCI.Mounts[1].Options = []string{"context=x"} },
			field: "mount option", value: "context=x", reason: "is not supported"},
		{name: "symlink relative", edit: func(s *Spec) { s.Symlinks[0].Path = "bin" },
			field: "symlink", value: "bin", reason: ReasonNotAbsolute},
		{name: "symlink without target", edit: func(s *Spec) { s.Symlinks[0].Target = "" },
			field: "symlink target", value: "/bin", reason: ReasonEmpty},
		{name: "no linux", edit: func(s *Spec) { s.OCI.Linux = nil },
			field: "linux", reason: ReasonEmpty},
		{name: "no uid map", edit: func(s *Spec) { s.OCI.Linux.UIDMappings = nil },
			field: "uid map", reason: ReasonEmpty},
		{name: "no gid map", edit: func(s *Spec) { s.OCI.Linux.GIDMappings = nil },
			field: "gid map", reason: ReasonEmpty},
		{name: "mapping of size 0", edit: func(s *Spec) { s.OCI.Linux.UIDMappings[1].Size = 0 },
			field: "uid map", value: "1:100000:0", reason: "has size 0"},
		{name: "inside ids overlap", edit: func(s *Spec) { s.OCI.Linux.UIDMappings[1].ContainerID = 0 },
			field: "uid map", value: "0:100000:65536", reason: ReasonOverlap},
		{name: "host ids overlap", edit: func(s *Spec) {
			s.OCI.Linux.GIDMappings = append(s.OCI.Linux.GIDMappings, specs.LinuxIDMapping{ContainerID: 1, HostID: 999, Size: 2})
		}, field: "gid map", value: "1:999:2", reason: ReasonOverlap},
		{name: "overlap at the top of the id space", edit: func(s *Spec) {
			s.OCI.Linux.UIDMappings = []specs.LinuxIDMapping{
				{ContainerID: 4294967290, HostID: 0, Size: 5},
				{ContainerID: 4294967294, HostID: 10, Size: 1},
			}
		}, field: "uid map", value: "4294967294:10:1", reason: ReasonOverlap},
		{name: "unknown idmap mode", edit: func(s *Spec) { s.IDMap = "auto" },
			field: "idmap", value: "auto", reason: "is not subids or single"},
		{name: "single with two ranges", edit: func(s *Spec) { s.IDMap = IDMapSingle },
			field: "idmap", value: "single", reason: "needs exactly one uid and one gid mapping"},
		{name: "size without terminal", edit: func(s *Spec) { s.OCI.Process.ConsoleSize = &specs.Box{Width: 80, Height: 24} },
			field: "console size", reason: "given without a terminal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.edit(s)
			err := s.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Validate() = %v, want *InvalidError", err)
			}
			want := InvalidError{Field: tc.field, Value: tc.value, Reason: tc.reason}
			if *inv != want {
				t.Errorf("Validate() error = %+v, want %+v", *inv, want)
			}
		})
	}
}

func TestInvalidErrorText(t *testing.T) {
	err := &InvalidError{Field: "volume destination", Value: "rel/dir", Reason: ReasonNotAbsolute}
	if got, want := err.Error(), `invalid volume destination "rel/dir": not an absolute path`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestOptions(t *testing.T) {
	m := specs.Mount{Options: []string{"rbind", "mode=0755", "gid=5"}}
	tests := []struct {
		name string
		has  bool
	}{
		{name: "rbind", has: true},
		{name: "mode", has: true},
		{name: "gid", has: true},
		{name: "ro"},
		{name: "mod"},
	}
	for _, tc := range tests {
		if got := HasOption(m, tc.name); got != tc.has {
			t.Errorf("HasOption(%q) = %v, want %v", tc.name, got, tc.has)
		}
	}
}

func TestValidateRootfs(t *testing.T) {
	tests := []struct {
		name string
		r    Rootfs
		want string // "" valid; else the error's Field
	}{
		{"one layer, tmpfs upper", Rootfs{Lower: []string{"/var/lib/img/l1"}}, ""},
		{"layers and upper", Rootfs{Lower: []string{"/a", "/b"}, Upper: "/c/upper", Work: "/c/work"}, ""},
		{"no layer", Rootfs{}, "rootfs"},
		{"relative layer", Rootfs{Lower: []string{"img"}}, "rootfs layer"},
		{"colon in a layer", Rootfs{Lower: []string{"/a:/b"}}, "rootfs layer"},
		{"comma in a layer", Rootfs{Lower: []string{"/a,upperdir=/x"}}, "rootfs layer"},
		{"upper without work", Rootfs{Lower: []string{"/a"}, Upper: "/u"}, "rootfs upper layer"},
		{"relative upper", Rootfs{Lower: []string{"/a"}, Upper: "u", Work: "/w"}, "rootfs upper layer"},
		{"fuse with upper", Rootfs{Lower: []string{"/a"}, Upper: "/u", Work: "/w", Overlay: OverlayFuse}, ""},
		{"fuse without upper", Rootfs{Lower: []string{"/a"}, Overlay: OverlayFuse}, "rootfs overlay"},
		{"auto without upper", Rootfs{Lower: []string{"/a"}, Overlay: OverlayAuto}, ""},
		{"unknown overlay", Rootfs{Lower: []string{"/a"}, Overlay: "btrfs"}, "rootfs overlay"},
	}
	for _, tc := range tests {
		s := validSpec()
		r := tc.r
		s.Rootfs = &r
		err := s.Validate()
		var ie *InvalidError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.As(err, &ie) || ie.Field != tc.want):
			t.Errorf("%s: %v, want an InvalidError for %s", tc.name, err, tc.want)
		}
	}
}
