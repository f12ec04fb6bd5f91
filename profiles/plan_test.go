package profiles

import (
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/spec"
)

var (
	dir = &fstest.MapFile{Mode: fs.ModeDir | 0o755}

	// singleMap is --userns=single for uid and gid 1000.
	singleMap = []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 1000, Size: 1}}
	// keepIDMap is --userns=keep-id for id 1000 with 100000:65536
	// delegated: every inside id below 65537 is mapped, 5 (tty) included.
	keepIDMap = []specs.LinuxIDMapping{
		{ContainerID: 0, HostID: 100000, Size: 1000},
		{ContainerID: 1000, HostID: 1000, Size: 1},
		{ContainerID: 1001, HostID: 101000, Size: 64536},
	}
)

// mergedUsrHost is a host with merged /usr: /bin, /sbin and /lib are links
// into /usr, /lib32, /libx32 and /opt do not exist.
func mergedUsrHost() fstest.MapFS {
	link := func(target string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}
	return fstest.MapFS{
		"usr/bin":           dir,
		"usr/lib":           dir,
		"usr/lib64":         dir,
		"bin":               link("usr/bin"),
		"sbin":              link("usr/sbin"),
		"lib":               link("usr/lib"),
		"lib64":             link("usr/lib64"),
		"etc/hostname":      &fstest.MapFile{Data: []byte("host\n")},
		"home/ada/src":      dir,
		"home/ada/notes.md": &fstest.MapFile{Data: []byte("# notes\n")},
		"srv/data":          dir,
		"srv/cache":         dir,
	}
}

func baseInputs() Inputs {
	return Inputs{
		Args:        []string{"make"},
		Cwd:         "/home/ada",
		UID:         1000,
		GID:         1000,
		IDMap:       spec.IDMapSingle,
		UIDMappings: singleMap,
		GIDMappings: singleMap,
	}
}

func mustDefault(t *testing.T) *Profile {
	t.Helper()
	p, err := Load("default")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mountAt(s *spec.Spec, dst string) (specs.Mount, bool) {
	for _, m := range s.OCI.Mounts {
		if m.Destination == dst {
			return m, true
		}
	}
	return specs.Mount{}, false
}

func TestPlanDefaultProfile(t *testing.T) {
	in := baseInputs()
	in.HostEnv = []string{"PATH=/home/ada/bin:/usr/bin", "HOME=/home/ada", "SSH_AUTH_SOCK=/run/agent"}
	s, err := Plan(mustDefault(t), in, mergedUsrHost())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("planned spec does not validate: %v", err)
	}

	// Merged /usr: the host's links come back as the same links.
	wantLinks := []spec.Symlink{
		{Target: "usr/bin", Path: "/bin"},
		{Target: "usr/sbin", Path: "/sbin"},
		{Target: "usr/lib", Path: "/lib"},
		{Target: "usr/lib64", Path: "/lib64"},
	}
	if got := s.Symlinks[:len(wantLinks)]; !reflect.DeepEqual(got, wantLinks) {
		t.Errorf("system-dir symlinks = %+v, want %+v", got, wantLinks)
	}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/opt"} {
		if m, ok := mountAt(s, d); ok {
			t.Errorf("%s is a link or absent on the host but is mounted: %+v", d, m)
		}
	}
	for _, d := range []string{"/usr", "/etc"} {
		m, ok := mountAt(s, d)
		if !ok || m.Type != spec.MountBind || m.Source != d || !slices.Contains(m.Options, "ro") {
			t.Errorf("%s: got %+v (present %v), want a read-only bind of the host's %s", d, m, ok, d)
		}
	}
	if m, ok := mountAt(s, "/home/ada"); !ok || m.Source != "/home/ada" || !slices.Contains(m.Options, "rw") {
		t.Errorf("work directory: got %+v (present %v), want a read-write bind", m, ok)
	}
	if m, ok := mountAt(s, "/tmp"); !ok || m.Type != spec.MountTmpfs {
		t.Errorf("/tmp: got %+v (present %v), want a tmpfs", m, ok)
	}
	if s.OCI.Hostname != "sandbox" {
		t.Errorf("hostname = %q, want the profile's", s.OCI.Hostname)
	}
	if p := s.OCI.Process; p.Cwd != "/home/ada" || p.User.UID != 1000 || p.User.GID != 1000 || !reflect.DeepEqual(p.Args, []string{"make"}) {
		t.Errorf("process = %+v, want make as 1000:1000 in /home/ada", p)
	}
	wantEnv := []string{"PATH=/home/ada/bin:/usr/bin", "HOME=/home/ada"}
	if !reflect.DeepEqual(s.OCI.Process.Env, wantEnv) {
		t.Errorf("env = %q, want %q", s.OCI.Process.Env, wantEnv)
	}
}

func TestPlanWorkdir(t *testing.T) {
	tests := []struct {
		cwd, workdir string
		want         string
		bound        bool
	}{
		{cwd: "/home/ada", want: "/home/ada", bound: true},
		{cwd: "/home/ada", workdir: "/src", want: "/src", bound: true},
		{cwd: "/", want: "/"},
	}
	for _, tc := range tests {
		in := baseInputs()
		in.Cwd, in.Workdir = tc.cwd, tc.workdir
		s, err := Plan(mustDefault(t), in, mergedUsrHost())
		if err != nil {
			t.Errorf("cwd %s -w %q: %v", tc.cwd, tc.workdir, err)
			continue
		}
		if s.OCI.Process.Cwd != tc.want {
			t.Errorf("cwd %s -w %q: workdir %s, want %s", tc.cwd, tc.workdir, s.OCI.Process.Cwd, tc.want)
		}
		if _, ok := mountAt(s, tc.cwd); ok != tc.bound {
			t.Errorf("cwd %s: bound %v, want %v", tc.cwd, ok, tc.bound)
		}
	}

	in := baseInputs()
	in.Workdir = "src"
	_, err := Plan(mustDefault(t), in, mergedUsrHost())
	var inv *spec.InvalidError
	if !errors.As(err, &inv) || inv.Field != "workdir" || inv.Reason != spec.ReasonNotAbsolute {
		t.Errorf("-w src: %v, want an invalid workdir that is not absolute", err)
	}
}

func TestPlanVolumes(t *testing.T) {
	empty := &Profile{Name: "empty"}
	tests := []struct {
		name    string
		volumes []string
		dst     string
		want    specs.Mount
	}{
		{
			name:    "source only",
			volumes: []string{"/srv/data"},
			dst:     "/srv/data",
			want:    specs.Mount{Destination: "/srv/data", Type: spec.MountBind, Source: "/srv/data", Options: []string{"rbind", "rw", "nosuid"}},
		},
		{
			name:    "relative source",
			volumes: []string{"src:/src"},
			dst:     "/src",
			want:    specs.Mount{Destination: "/src", Type: spec.MountBind, Source: "/home/ada/src", Options: []string{"rbind", "rw", "nosuid"}},
		},
		{
			name:    "relative source with dot and default destination",
			volumes: []string{"./src/"},
			dst:     "/home/ada/src",
			want:    specs.Mount{Destination: "/home/ada/src", Type: spec.MountBind, Source: "/home/ada/src", Options: []string{"rbind", "rw", "nosuid"}},
		},
		{
			name:    "read-only",
			volumes: []string{"/srv/data:/data:ro"},
			dst:     "/data",
			want:    specs.Mount{Destination: "/data", Type: spec.MountBind, Source: "/srv/data", Options: []string{"rbind", "ro", "nosuid"}},
		},
		{
			name:    "several options",
			volumes: []string{"/srv/data:/data:ro,noexec,nodev"},
			dst:     "/data",
			want:    specs.Mount{Destination: "/data", Type: spec.MountBind, Source: "/srv/data", Options: []string{"rbind", "ro", "nosuid", "noexec", "nodev"}},
		},
		{
			name:    "last of ro and rw wins",
			volumes: []string{"/srv/data:/data:ro,rw"},
			dst:     "/data",
			want:    specs.Mount{Destination: "/data", Type: spec.MountBind, Source: "/srv/data", Options: []string{"rbind", "rw", "nosuid"}},
		},
		{
			name:    "file",
			volumes: []string{"/home/ada/notes.md:/notes.md:ro"},
			dst:     "/notes.md",
			want:    specs.Mount{Destination: "/notes.md", Type: spec.MountBind, Source: "/home/ada/notes.md", Options: []string{"rbind", "ro", "nosuid"}},
		},
		{
			name:    "destination cleaned",
			volumes: []string{"/srv/data:/data//x/"},
			dst:     "/data/x",
			want:    specs.Mount{Destination: "/data/x", Type: spec.MountBind, Source: "/srv/data", Options: []string{"rbind", "rw", "nosuid"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInputs()
			in.Volumes = tc.volumes
			s, err := Plan(empty, in, mergedUsrHost())
			if err != nil {
				t.Fatal(err)
			}
			got, ok := mountAt(s, tc.dst)
			if !ok {
				t.Fatalf("no mount at %s in %+v", tc.dst, s.OCI.Mounts)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("mount = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlanVolumeErrors(t *testing.T) {
	tests := []struct {
		volume string
		check  func(error) bool
		want   string
	}{
		{"/srv/data:/data:bogus", isVolumeError(`unknown option "bogus" (want ro, rw, noexec or nodev)`), "bad option"},
		{"/srv/data:/data:ro,", isVolumeError(`unknown option "" (want ro, rw, noexec or nodev)`), "empty option"},
		{"/srv/data:/data:ro:x", isVolumeError("want SRC:DST[:ro]"), "four fields"},
		{":/data", isVolumeError("want SRC:DST[:ro]"), "no source"},
		{"", isVolumeError("want SRC:DST[:ro]"), "empty"},
		{"/srv/data:rel/dir", isInvalid("volume destination", "rel/dir", spec.ReasonNotAbsolute), "relative destination"},
		{"/srv/data:/a/../../etc", isInvalid("volume destination", "/a/../../etc", spec.ReasonDotDot), "destination escaping the root"},
		{"/srv/data:", isInvalid("volume destination", "", spec.ReasonEmpty), "empty destination"},
		{"/srv/data:/", isInvalid("mount destination", "/", spec.ReasonRootMount), "destination is the root"},
		{"/nonexistent:/x", isBindSource("/nonexistent", "/x", fs.ErrNotExist), "missing source"},
		{"missing:/x", isBindSource("/home/ada/missing", "/x", fs.ErrNotExist), "missing relative source"},
	}
	for _, tc := range tests {
		in := baseInputs()
		in.Volumes = []string{tc.volume}
		_, err := Plan(&Profile{Name: "empty"}, in, mergedUsrHost())
		if !tc.check(err) {
			t.Errorf("%s: -v %q: got %#v (%v)", tc.want, tc.volume, err, err)
		}
	}
}

func isVolumeError(reason string) func(error) bool {
	return func(err error) bool {
		var ve *VolumeError
		return errors.As(err, &ve) && ve.Reason == reason
	}
}

func isInvalid(field, value, reason string) func(error) bool {
	return func(err error) bool {
		var inv *spec.InvalidError
		return errors.As(err, &inv) && *inv == spec.InvalidError{Field: field, Value: value, Reason: reason}
	}
}

func isBindSource(src, dst string, target error) func(error) bool {
	return func(err error) bool {
		var be *BindSourceError
		return errors.As(err, &be) && be.Source == src && be.Dest == dst && errors.Is(be.Err, target)
	}
}

func TestPlanVolumeOverridesProfile(t *testing.T) {
	p := &Profile{Name: "p", Volume: []string{"/srv/cache:/data:ro"}, Tmpfs: []string{"/data/tmp"}}
	in := baseInputs()
	in.Volumes = []string{"/srv/data:/data"}
	s, err := Plan(p, in, mergedUsrHost())
	if err != nil {
		t.Fatal(err)
	}
	var at []specs.Mount
	for _, m := range s.OCI.Mounts {
		if m.Destination == "/data" {
			at = append(at, m)
		}
	}
	want := []specs.Mount{{Destination: "/data", Type: spec.MountBind, Source: "/srv/data", Options: []string{"rbind", "rw", "nosuid"}}}
	if !reflect.DeepEqual(at, want) {
		t.Errorf("mounts at /data = %+v, want only the user's %+v", at, want)
	}
	if _, ok := mountAt(s, "/data/tmp"); !ok {
		t.Errorf("the profile's tmpfs under /data is gone: %+v", s.OCI.Mounts)
	}
}

func TestPlanParentsBeforeChildren(t *testing.T) {
	in := baseInputs()
	in.Volumes = []string{"/srv/cache:/data/a/b", "/srv/data:/data", "/srv/cache:/data/a"}
	in.Tmpfs = []string{"/data/a/b/c"}
	s, err := Plan(mustDefault(t), in, mergedUsrHost())
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range s.OCI.Mounts {
		pos[m.Destination] = i
	}
	for i, m := range s.OCI.Mounts {
		for p := m.Destination; p != "/"; {
			p = parentDir(p)
			if j, ok := pos[p]; ok && j > i {
				t.Errorf("%s (#%d) is mounted before its parent %s (#%d)", m.Destination, i, p, j)
			}
		}
	}
	// Mounts at the same depth keep their order: the system dirs first,
	// in profile order.
	if pos["/usr"] > pos["/etc"] || pos["/proc"] < pos["/etc"] {
		t.Errorf("same-depth order changed: %v", destinations(s))
	}
}

func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func destinations(s *spec.Spec) []string {
	var out []string
	for _, m := range s.OCI.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

func TestPlanMountOnSymlink(t *testing.T) {
	in := baseInputs()
	in.Volumes = []string{"/srv/data:/bin"}
	_, err := Plan(mustDefault(t), in, mergedUsrHost())
	var inv *spec.InvalidError
	if !errors.As(err, &inv) || inv.Field != "mount destination" || inv.Value != "/bin" ||
		inv.Reason != "is a symbolic link in this profile (/bin -> usr/bin)" {
		t.Errorf("-v on /bin, a link: %v, want an invalid mount destination", err)
	}
}

// A work directory or volume below a merged-/usr link is mounted where the
// link points, so "cd /lib/modules && sandbox run ls" works.
func TestPlanMountBelowSymlink(t *testing.T) {
	host := mergedUsrHost()
	host["usr/lib/modules"] = dir
	in := baseInputs()
	in.Cwd = "/lib/modules"
	in.Volumes = []string{"/srv/data:/bin/data:ro"}
	s, err := Plan(mustDefault(t), in, host)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mountAt(s, "/usr/lib/modules"); !ok {
		t.Errorf("work directory /lib/modules not mounted at /usr/lib/modules: %+v", s.OCI.Mounts)
	}
	if _, ok := mountAt(s, "/usr/bin/data"); !ok {
		t.Errorf("volume on /bin/data not mounted at /usr/bin/data: %+v", s.OCI.Mounts)
	}
	for _, m := range s.OCI.Mounts {
		if strings.HasPrefix(m.Destination, "/lib/") || strings.HasPrefix(m.Destination, "/bin/") {
			t.Errorf("mount %s is below a symlink of the skeleton", m.Destination)
		}
	}
	if s.OCI.Process.Cwd != "/lib/modules" {
		t.Errorf("cwd %q, want /lib/modules (resolved through the link inside)", s.OCI.Process.Cwd)
	}
}

func TestPlanTmpfs(t *testing.T) {
	in := baseInputs()
	in.Tmpfs = []string{"/scratch:size=1m,mode=0700", "/cache"}
	s, err := Plan(&Profile{Name: "empty"}, in, mergedUsrHost())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]string{
		"/scratch": {"mode=0700", "nosuid", "nodev", "size=1m"},
		"/cache":   {"mode=1777", "nosuid", "nodev"},
	}
	for dst, want := range tests {
		m, ok := mountAt(s, dst)
		if !ok || m.Type != spec.MountTmpfs || !reflect.DeepEqual(m.Options, want) {
			t.Errorf("--tmpfs %s: got %+v (present %v), want tmpfs with %v", dst, m, ok, want)
		}
	}

	in.Tmpfs = []string{"scratch"}
	_, err = Plan(&Profile{Name: "empty"}, in, mergedUsrHost())
	if !isInvalid("--tmpfs", "scratch", spec.ReasonNotAbsolute)(err) {
		t.Errorf("--tmpfs scratch: %v, want a relative --tmpfs error", err)
	}
}

func TestPlanEnv(t *testing.T) {
	hostEnv := []string{
		"PATH=/usr/bin:/bin", "HOME=/home/ada", "LC_ALL=C.UTF-8", "LC_TIME=en_GB.UTF-8", "LCX=no",
		"LANG=en_US.UTF-8", "SECRET=hunter2", "AWS_KEY=k", "EQ=a=b",
	}
	tests := []struct {
		name     string
		profile  Profile
		env      []string
		envFiles []EnvFile
		hostEnv  []string
		want     []string
	}{
		{
			name:    "env-pass with a prefix",
			profile: Profile{EnvPass: []string{"PATH", "LC_*", "LANG"}},
			hostEnv: hostEnv,
			want:    []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "LC_TIME=en_GB.UTF-8", "LANG=en_US.UTF-8"},
		},
		{
			name:    "nothing passed gets the default PATH",
			hostEnv: hostEnv,
			want:    []string{"PATH=" + defaultPath},
		},
		{
			name:    "-e NAME passes the host's value, -e NAME=VALUE sets",
			env:     []string{"SECRET", "EQ", "NOT_ON_HOST", "X=1", "EMPTY="},
			hostEnv: hostEnv,
			want:    []string{"SECRET=hunter2", "EQ=a=b", "X=1", "EMPTY=", "PATH=" + defaultPath},
		},
		{
			name:     "profile env, then env files, then -e",
			profile:  Profile{EnvPass: []string{"HOME"}, Env: []string{"A=profile", "B=profile", "C=profile", "HOME=/root"}},
			envFiles: []EnvFile{{Path: "a.env", Data: []byte("# a comment\n\n  B=file  \nAWS_KEY\nC=file\n")}},
			env:      []string{"C=flag"},
			hostEnv:  hostEnv,
			want:     []string{"HOME=/root", "A=profile", "B=file", "C=flag", "AWS_KEY=k", "PATH=" + defaultPath},
		},
		{
			name:     "later env files win",
			envFiles: []EnvFile{{Path: "1.env", Data: []byte("A=1\r\n")}, {Path: "2.env", Data: []byte("A=2")}},
			want:     []string{"A=2", "PATH=" + defaultPath},
		},
		{
			name:    "-e PATH replaces the passed PATH",
			profile: Profile{EnvPass: []string{"PATH"}},
			env:     []string{"PATH=/opt/bin"},
			hostEnv: hostEnv,
			want:    []string{"PATH=/opt/bin"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInputs()
			in.Env, in.EnvFiles, in.HostEnv = tc.env, tc.envFiles, tc.hostEnv
			p := tc.profile
			p.Name = "test"
			s, err := Plan(&p, in, mergedUsrHost())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.OCI.Process.Env, tc.want) {
				t.Errorf("env = %q\nwant  %q", s.OCI.Process.Env, tc.want)
			}
		})
	}
}

func TestPlanEnvErrors(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		envFiles []EnvFile
		check    func(error) bool
	}{
		{
			name:     "env file line without a name",
			envFiles: []EnvFile{{Path: "/home/ada/a.env", Data: []byte("A=1\n# c\n  =oops\n")}},
			check: func(err error) bool {
				var ee *EnvFileError
				return errors.As(err, &ee) && *ee == EnvFileError{Path: "/home/ada/a.env", Line: 3, Text: "=oops"}
			},
		},
		{
			name:  "-e without a name",
			env:   []string{"=x"},
			check: isInvalid("env", "=x", "is not NAME=VALUE or NAME"),
		},
		{
			name:  "empty -e",
			env:   []string{""},
			check: isInvalid("env", "", "is not NAME=VALUE or NAME"),
		},
	}
	for _, tc := range tests {
		in := baseInputs()
		in.Env, in.EnvFiles = tc.env, tc.envFiles
		_, err := Plan(&Profile{Name: "empty"}, in, mergedUsrHost())
		if !tc.check(err) {
			t.Errorf("%s: got %#v (%v)", tc.name, err, err)
		}
	}
}

func TestPlanDevptsGID(t *testing.T) {
	tests := []struct {
		name string
		gids []specs.LinuxIDMapping
		want bool
	}{
		{"single map leaves tty unmapped", singleMap, false},
		{"keep-id maps tty", keepIDMap, true},
		{"map that ends just below tty", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 5}, {ContainerID: 1000, HostID: 1000, Size: 1}}, false},
		{"map that starts at tty", []specs.LinuxIDMapping{{ContainerID: 5, HostID: 100000, Size: 1}, {ContainerID: 1000, HostID: 1000, Size: 1}}, true},
	}
	for _, tc := range tests {
		in := baseInputs()
		in.IDMap = spec.IDMapSubIDs
		in.UIDMappings, in.GIDMappings = keepIDMap, tc.gids
		s, err := Plan(&Profile{Name: "empty"}, in, mergedUsrHost())
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		m, ok := mountAt(s, "/dev/pts")
		if !ok || m.Type != spec.MountDevpts {
			t.Errorf("%s: no devpts at /dev/pts", tc.name)
			continue
		}
		if got := slices.Contains(m.Options, "gid=5"); got != tc.want {
			t.Errorf("%s: devpts options %v: gid=5 present %v, want %v", tc.name, m.Options, got, tc.want)
		}
	}
}

func TestPlanUnmappedUser(t *testing.T) {
	tests := []struct {
		name       string
		uids, gids []specs.LinuxIDMapping
		want       UnmappedUserError
	}{
		{"uid", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}, singleMap, UnmappedUserError{Kind: "uid", ID: 1000}},
		{"gid", singleMap, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1000}}, UnmappedUserError{Kind: "gid", ID: 1000}},
		{"no map", nil, nil, UnmappedUserError{Kind: "uid", ID: 1000}},
	}
	for _, tc := range tests {
		in := baseInputs()
		in.IDMap = spec.IDMapSubIDs
		in.UIDMappings, in.GIDMappings = tc.uids, tc.gids
		_, err := Plan(&Profile{Name: "empty"}, in, mergedUsrHost())
		var ue *UnmappedUserError
		if !errors.As(err, &ue) || *ue != tc.want {
			t.Errorf("%s: got %v, want %+v", tc.name, err, tc.want)
		}
	}
	want := "the gid map does not map your own gid 1000"
	if got := (&UnmappedUserError{Kind: "gid", ID: 1000}).Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestPlanRootfs(t *testing.T) {
	p, err := Load("container")
	if err != nil {
		t.Fatal(err)
	}
	in := baseInputs()
	rootMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}}
	in.UID, in.GID, in.IDMap, in.UIDMappings, in.GIDMappings = 0, 0, spec.IDMapRoot, rootMap, rootMap
	in.Rootfs = &spec.Rootfs{Lower: []string{"/srv/data"}}
	in.ImageEnv = []string{"PATH=/image/bin", "LANG=C.UTF-8"}
	in.Env = []string{"LANG=de_DE.UTF-8"}
	in.HostEnv = []string{"TERM=xterm", "HOME=/home/ada", "PATH=/host/bin"}
	s, err := Plan(p, in, mergedUsrHost())
	if err != nil {
		t.Fatal(err)
	}
	if s.Rootfs == nil || s.Rootfs.Lower[0] != "/srv/data" {
		t.Errorf("Rootfs = %+v", s.Rootfs)
	}
	for _, host := range []string{"/usr", "/etc", "/home/ada"} {
		if _, ok := mountAt(s, host); ok {
			t.Errorf("host %s is mounted into a root of its own", host)
		}
	}
	if m, ok := mountAt(s, "/sys"); !ok || m.Type != spec.MountSysfs || !spec.HasOption(m, "ro") {
		t.Errorf("/sys = %+v, %v; want a read-only sysfs", m, ok)
	}
	if s.OCI.Process.Cwd != "/" {
		t.Errorf("workdir = %q, want / (not the host's current directory)", s.OCI.Process.Cwd)
	}
	// The image's environment over the profile's, -e over the image's;
	// the host's PATH and HOME stay out.
	want := []string{"TERM=xterm", "PATH=/image/bin", "LANG=de_DE.UTF-8"}
	if got := s.OCI.Process.Env; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
	// Root of an image holds the bounding set, granted explicitly.
	c := s.OCI.Process.Capabilities
	if !reflect.DeepEqual(c.Ambient, c.Bounding) || len(c.Ambient) == 0 {
		t.Errorf("root's capabilities: ambient %v, bounding %v", c.Ambient, c.Bounding)
	}
	in.UID, in.GID = 1000, 1000
	s, err = Plan(p, in, mergedUsrHost())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.OCI.Process.Capabilities.Ambient; len(got) != 0 {
		t.Errorf("a non-root user inside is granted %v", got)
	}
}
