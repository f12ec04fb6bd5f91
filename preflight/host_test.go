package preflight

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"testing/fstest"
)

func dirOwnedBy(uid uint32, perm fs.FileMode) *fstest.MapFile {
	return &fstest.MapFile{Mode: fs.ModeDir | perm, Sys: &syscall.Stat_t{Uid: uid}}
}

func TestReadRuntimeDir(t *testing.T) {
	fsys := fstest.MapFS{
		"run/user/1000":     dirOwnedBy(1000, 0o700),
		"run/user/1001":     dirOwnedBy(1001, 0o755),
		"run/user/file":     &fstest.MapFile{Data: []byte("x"), Mode: 0o600},
		"run/user/nosys":    &fstest.MapFile{Mode: fs.ModeDir | 0o700},
		"run/user/1000/bus": &fstest.MapFile{Mode: fs.ModeSocket | 0o666},
	}
	tests := []struct {
		dir     string
		want    RuntimeDirFacts
		wantErr error
	}{
		{"", RuntimeDirFacts{Owner: -1}, nil},
		{"/run/user/1000", RuntimeDirFacts{Path: "/run/user/1000", IsDir: true, Owner: 1000, Perm: 0o700}, nil},
		{"/run/user/1001/", RuntimeDirFacts{Path: "/run/user/1001/", IsDir: true, Owner: 1001, Perm: 0o755}, nil},
		{"/run/user/file", RuntimeDirFacts{Path: "/run/user/file", Owner: -1, Perm: 0o600}, nil},
		{"/run/user/nosys", RuntimeDirFacts{Path: "/run/user/nosys", IsDir: true, Owner: -1, Perm: 0o700}, nil},
		{"/run/user/2000", RuntimeDirFacts{Path: "/run/user/2000", Owner: -1}, fs.ErrNotExist},
		{"run/user/1000", RuntimeDirFacts{Path: "run/user/1000", Owner: -1}, errors.New("not an absolute path")},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got := ReadRuntimeDir(fsys, tt.dir)
			gotErr := got.Err
			got.Err = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadRuntimeDir = %+v, want %+v", got, tt.want)
			}
			switch {
			case tt.wantErr == nil && gotErr != nil:
				t.Errorf("Err = %v, want nil", gotErr)
			case tt.wantErr != nil && gotErr == nil:
				t.Errorf("Err = nil, want %v", tt.wantErr)
			case tt.wantErr != nil && !errors.Is(gotErr, tt.wantErr) && gotErr.Error() != tt.wantErr.Error():
				t.Errorf("Err = %v, want %v", gotErr, tt.wantErr)
			}
		})
	}
}

func TestReadSystemd(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		dir  string
		user string
		want SystemdFacts
	}{
		{
			name: "desktop session",
			fsys: fstest.MapFS{
				"run/systemd/system":                 &fstest.MapFile{Mode: fs.ModeDir | 0o755},
				"run/user/1000/systemd/private":      &fstest.MapFile{Mode: fs.ModeSocket | 0o600},
				"run/user/1000/bus":                  &fstest.MapFile{Mode: fs.ModeSocket | 0o666},
				"var/lib/systemd/linger/ada":         &fstest.MapFile{},
				"var/lib/systemd/linger/someoneelse": &fstest.MapFile{},
			},
			dir: "/run/user/1000", user: "ada",
			want: SystemdFacts{Booted: true, UserSocket: "/run/user/1000/systemd/private", Linger: true},
		},
		{
			name: "bus only",
			fsys: fstest.MapFS{
				"run/systemd/system": &fstest.MapFile{Mode: fs.ModeDir | 0o755},
				"run/user/1000/bus":  &fstest.MapFile{Mode: fs.ModeSocket | 0o666},
			},
			dir: "/run/user/1000", user: "ada",
			want: SystemdFacts{Booted: true, UserSocket: "/run/user/1000/bus"},
		},
		{
			name: "a regular file is not a socket",
			fsys: fstest.MapFS{
				"run/systemd/system":            &fstest.MapFile{Mode: fs.ModeDir | 0o755},
				"run/user/1000/systemd/private": &fstest.MapFile{},
			},
			dir: "/run/user/1000", user: "ada",
			want: SystemdFacts{Booted: true},
		},
		{
			name: "no systemd, no runtime dir",
			fsys: fstest.MapFS{"run/systemd/netif": &fstest.MapFile{Mode: fs.ModeDir}},
			user: "ada",
			want: SystemdFacts{},
		},
		{
			name: "a user name is not a path",
			fsys: fstest.MapFS{"var/lib/systemd/linger": &fstest.MapFile{Mode: fs.ModeDir}},
			user: "..",
			want: SystemdFacts{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReadSystemd(tt.fsys, tt.dir, tt.user); got != tt.want {
				t.Errorf("ReadSystemd = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDistroInstall(t *testing.T) {
	tests := []struct {
		osRelease string
		pkg       string
		want      string
	}{
		{"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n", "uidmap", "sudo apt-get install uidmap"},
		{"ID=ubuntu\nID_LIKE=debian\n", "passt", "sudo apt-get install passt"},
		{"ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", "fuse-overlayfs", "sudo apt-get install fuse-overlayfs"},
		{"ID=fedora\n", "uidmap", "sudo dnf install shadow-utils"},
		{"ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", "slirp4netns", "sudo dnf install slirp4netns"},
		{"ID=arch\n", "uidmap", "sudo pacman -S shadow"},
		{"ID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\n", "fuse3", "sudo zypper install fuse3"},
		{"ID=alpine\n", "uidmap", "sudo apk add shadow-uidmap"},
		{"ID='nixos'\n", "uidmap", "sudo apt-get install uidmap"},
		{"", "uidmap", "sudo apt-get install uidmap"},
	}
	for _, tt := range tests {
		d := ParseOSRelease([]byte(tt.osRelease))
		if got := d.Install(tt.pkg); got != tt.want {
			t.Errorf("%q: Install(%q) = %q, want %q", tt.osRelease, tt.pkg, got, tt.want)
		}
	}
}

func TestReadDistro(t *testing.T) {
	fsys := fstest.MapFS{"usr/lib/os-release": &fstest.MapFile{Data: []byte("ID=fedora\nVERSION_ID=41\n")}}
	if got := ReadDistro(fsys); got.ID != "fedora" {
		t.Errorf("ReadDistro from usr/lib = %+v", got)
	}
	fsys["etc/os-release"] = &fstest.MapFile{Data: []byte("ID=ubuntu\nID_LIKE=debian\n")}
	if got := ReadDistro(fsys); !reflect.DeepEqual(got, Distro{ID: "ubuntu", Like: []string{"debian"}}) {
		t.Errorf("ReadDistro from etc = %+v", got)
	}
	if got := ReadDistro(fstest.MapFS{}); !reflect.DeepEqual(got, Distro{}) {
		t.Errorf("ReadDistro of nothing = %+v", got)
	}
}

func TestNextFreeSubIDs(t *testing.T) {
	tests := []struct {
		name           string
		subuid, subgid string
		want           uint32
	}{
		{"empty", "", "", 100000},
		{"after useradd's first", "ada:100000:65536\n", "ada:100000:65536\n", 165536},
		{"highest of both files", "ada:100000:65536\nbob:165536:65536\n", "ada:100000:65536\ncarl:300000:1000\n", 301000},
		{"low ranges do not count", "sys:1000:500\n", "", 100000},
		{"junk is ignored", "# comment\nada:x:y\n\nbob:200000:65536:extra\n", "", 100000},
		{"no room at the top", "big:4294950000:1000\n", "", 100000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"etc/subuid": &fstest.MapFile{Data: []byte(tt.subuid)},
				"etc/subgid": &fstest.MapFile{Data: []byte(tt.subgid)},
			}
			if got := NextFreeSubIDs(fsys); got != tt.want {
				t.Errorf("NextFreeSubIDs = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestVersionLine(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"fuse-overlayfs", "fusermount3 version: 3.14.0\nfuse-overlayfs: version 1.10\nFUSE library version 3.14.0\n", "fuse-overlayfs: version 1.10"},
		{"slirp4netns", "slirp4netns version 1.2.0\ncommit: 656041d\n", "slirp4netns version 1.2.0"},
		{"pasta", "\npasta unknown version\nCopyright Red Hat\n", "pasta unknown version"},
		{"pasta", "passt 2024_06_24\n", "passt 2024_06_24"},
		{"x", "", ""},
	}
	for _, tt := range tests {
		if got := VersionLine(tt.name, []byte(tt.out)); got != tt.want {
			t.Errorf("VersionLine(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, perm fs.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, perm); err != nil {
			t.Fatal(err)
		}
	}
	write("tool", 0o755)
	write("noexec", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, name, want string
	}{
		{dir, "tool", filepath.Join(dir, "tool")},
		{"/nonexistent:" + dir, "tool", filepath.Join(dir, "tool")},
		{dir, "noexec", ""},
		{dir, "adir", ""},
		{dir, "missing", ""},
		// Relative elements are not searched.
		{".:relative", "tool", ""},
		{"", "tool", ""},
	}
	for _, tt := range tests {
		if got := lookPath(tt.path, tt.name); got != tt.want {
			t.Errorf("lookPath(%q, %q) = %q, want %q", tt.path, tt.name, got, tt.want)
		}
	}
}
