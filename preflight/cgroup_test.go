package preflight

import (
	"errors"
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"
)

// hybridMountinfo is this project's VM: v1 controllers on a tmpfs, and
// systemd's controller-less cgroup2 at /sys/fs/cgroup/unified.
const hybridMountinfo = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const unifiedMountinfo = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

const legacyMountinfo = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
`

func TestParseMountinfo(t *testing.T) {
	in := `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
37 35 0:40 / /home/ada/with\040space rw shared:2 master:3 - fuse.sshfs host:/a\134b rw
broken line
38 35 0:41 / /x rw - tmpfs
`
	want := []Mount{
		{Point: "/mnt2", FSType: "ext3", Source: "/dev/root"},
		{Point: "/home/ada/with space", FSType: "fuse.sshfs", Source: `host:/a\b`},
	}
	if got := ParseMountinfo([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMountinfo = %+v, want %+v", got, want)
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:        "/plain",
		`/a\040b`:       "/a b",
		`/tab\011x`:     "/tab\tx",
		`/trailing\04`:  `/trailing\04`,
		`/not\999octal`: `/not\999octal`,
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCgroupLayoutOf(t *testing.T) {
	tests := []struct {
		name       string
		mountinfo  string
		wantLayout CgroupLayout
		wantV2     string
	}{
		{"unified", unifiedMountinfo, CgroupUnified, "/sys/fs/cgroup"},
		{"hybrid", hybridMountinfo, CgroupHybrid, "/sys/fs/cgroup/unified"},
		{"legacy", legacyMountinfo, CgroupLegacy, ""},
		{"none", "26 1 254:0 / / rw - ext4 /dev/vda rw\n", CgroupNone, ""},
		{"cgroup2 elsewhere only", "50 1 0:50 / /mnt/cg rw - cgroup2 cgroup2 rw\n", CgroupUnified, "/mnt/cg"},
		{"tmpfs over a cgroup2 root hides it",
			unifiedMountinfo + "60 27 0:60 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
				"61 60 0:61 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
			CgroupLegacy, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layout, v2 := CgroupLayoutOf(ParseMountinfo([]byte(tt.mountinfo)))
			if layout != tt.wantLayout || v2 != tt.wantV2 {
				t.Errorf("CgroupLayoutOf = %q, %q; want %q, %q", layout, v2, tt.wantLayout, tt.wantV2)
			}
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0::/user.slice/user-1000.slice/session-3.scope\n", "/user.slice/user-1000.slice/session-3.scope"},
		{"9:name=systemd:/\n4:memory:/process_api/61a3\n0::/\n", "/"},
		{"4:memory:/x\n1:cpu:/\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ParseProcCgroup([]byte(tt.in)); got != tt.want {
			t.Errorf("ParseProcCgroup(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUserManagerCgroup(t *testing.T) {
	tests := []struct {
		own  string
		uid  uint32
		want string
	}{
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.scope", 1000, "/user.slice/user-1000.slice/user@1000.service"},
		{"/user.slice/user-1000.slice/session-3.scope", 1000, "/user.slice/user-1000.slice/user@1000.service"},
		{"/", 0, "/user.slice/user-0.slice/user@0.service"},
		{"", 1001, "/user.slice/user-1001.slice/user@1001.service"},
		// Another user's manager is not ours.
		{"/user.slice/user-1000.slice/user@1000.service/x", 1001, "/user.slice/user-1001.slice/user@1001.service"},
	}
	for _, tt := range tests {
		if got := UserManagerCgroup(tt.own, tt.uid); got != tt.want {
			t.Errorf("UserManagerCgroup(%q, %d) = %q, want %q", tt.own, tt.uid, got, tt.want)
		}
	}
}

func TestReadCgroupFacts(t *testing.T) {
	const svc = "sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers"
	tests := []struct {
		name    string
		files   map[string]string
		statfs  string
		want    CgroupFacts
		wantErr error
	}{
		{
			name: "unified, delegated",
			files: map[string]string{
				"proc/self/mountinfo": unifiedMountinfo,
				"proc/self/cgroup":    "0::/user.slice/user-1000.slice/user@1000.service/app.slice/sandbox.scope\n",
				svc:                   "cpuset cpu io memory pids\n",
			},
			want: CgroupFacts{
				Layout: CgroupUnified, V2Mount: "/sys/fs/cgroup",
				Own:         "/user.slice/user-1000.slice/user@1000.service/app.slice/sandbox.scope",
				Delegated:   "/user.slice/user-1000.slice/user@1000.service",
				Controllers: []string{"cpuset", "cpu", "io", "memory", "pids"},
			},
		},
		{
			name: "unified, nothing delegated",
			files: map[string]string{
				"proc/self/mountinfo": unifiedMountinfo,
				"proc/self/cgroup":    "0::/user.slice/user-1000.slice/session-2.scope\n",
				svc:                   "\n",
			},
			want: CgroupFacts{
				Layout: CgroupUnified, V2Mount: "/sys/fs/cgroup",
				Own:         "/user.slice/user-1000.slice/session-2.scope",
				Delegated:   "/user.slice/user-1000.slice/user@1000.service",
				Controllers: []string{},
			},
		},
		{
			name: "unified, no user manager",
			files: map[string]string{
				"proc/self/mountinfo": unifiedMountinfo,
				"proc/self/cgroup":    "0::/system.slice/ssh.service\n",
			},
			want: CgroupFacts{
				Layout: CgroupUnified, V2Mount: "/sys/fs/cgroup",
				Own:       "/system.slice/ssh.service",
				Delegated: "/user.slice/user-1000.slice/user@1000.service",
			},
			wantErr: fs.ErrNotExist,
		},
		{
			name: "hybrid reads the controller-less hierarchy",
			files: map[string]string{
				"proc/self/mountinfo": hybridMountinfo,
				"proc/self/cgroup":    "4:memory:/x\n0::/\n",
				"sys/fs/cgroup/unified/user.slice/user-1000.slice/user@1000.service/cgroup.controllers": "\n",
			},
			want: CgroupFacts{
				Layout: CgroupHybrid, V2Mount: "/sys/fs/cgroup/unified", Own: "/",
				Delegated:   "/user.slice/user-1000.slice/user@1000.service",
				Controllers: []string{},
			},
		},
		{
			name:  "legacy has nothing to read",
			files: map[string]string{"proc/self/mountinfo": legacyMountinfo},
			want:  CgroupFacts{Layout: CgroupLegacy},
			// An error of its own, not a missing file.
		},
		{
			name:   "statfs wins over missing mountinfo",
			files:  map[string]string{svc: "memory pids\n"},
			statfs: "cgroup2",
			want: CgroupFacts{
				Layout: CgroupUnified, V2Mount: "/sys/fs/cgroup",
				Delegated:   "/user.slice/user-1000.slice/user@1000.service",
				Controllers: []string{"memory", "pids"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			got := ReadCgroupFacts(fsys, 1000, tt.statfs)
			gotErr := got.ControllersErr
			got.ControllersErr = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadCgroupFacts =\n %+v\nwant\n %+v", got, tt.want)
			}
			switch {
			case tt.wantErr != nil && !errors.Is(gotErr, tt.wantErr):
				t.Errorf("ControllersErr = %v, want %v", gotErr, tt.wantErr)
			case tt.wantErr == nil && tt.want.Controllers == nil && gotErr == nil:
				t.Errorf("ControllersErr = nil, want an error: no controllers were read")
			case tt.want.Controllers != nil && gotErr != nil:
				t.Errorf("ControllersErr = %v, want nil", gotErr)
			}
		})
	}
}

func TestMissingControllers(t *testing.T) {
	tests := []struct {
		have, want []string
	}{
		{[]string{"cpuset", "cpu", "io", "memory", "pids"}, nil},
		{[]string{"memory", "pids"}, []string{"cpu"}},
		{nil, []string{"cpu", "memory", "pids"}},
	}
	for _, tt := range tests {
		if got := MissingControllers(tt.have); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("MissingControllers(%q) = %q, want %q", tt.have, got, tt.want)
		}
	}
}

func TestFSPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                 ".",
		"/run/user/1000":    "run/user/1000",
		"/run/user/1000/":   "run/user/1000",
		"/a/../../etc/x":    "etc/x",
		"/sys//fs/cgroup/.": "sys/fs/cgroup",
	} {
		if got := fsPath(in); got != want || !fs.ValidPath(got) {
			t.Errorf("fsPath(%q) = %q, want %q (valid)", in, got, want)
		}
	}
}
