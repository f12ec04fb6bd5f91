package idmap

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// realHelpers returns the installed, privileged newuidmap and newgidmap.
func realHelpers(t *testing.T) Helpers {
	t.Helper()
	h, err := FindHelpers(systemPath)
	if err != nil {
		skipf(t, "no usable newuidmap/newgidmap (install package uidmap): %v", err)
	}
	return h
}

func TestFindHelpers(t *testing.T) {
	real := realHelpers(t)

	empty := t.TempDir()
	// plain: ordinary executable copies, as a user building shadow would get.
	plain := t.TempDir()
	writeExec(t, plain, "newuidmap", "#!/bin/sh\n")
	writeExec(t, plain, "newgidmap", "#!/bin/sh\n")
	// linked: symlinks to the installed helpers.
	linked := t.TempDir()
	for _, p := range []string{real.NewUIDMap, real.NewGIDMap} {
		if err := os.Symlink(p, filepath.Join(linked, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	// notRoot: setuid, but to someone other than root.
	notRoot := t.TempDir()
	for _, n := range []string{"newuidmap", "newgidmap"} {
		p := writeExec(t, notRoot, n, "#!/bin/sh\n")
		if os.Geteuid() == 0 {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, 0o755|os.ModeSetuid); err != nil {
			t.Fatal(err)
		}
	}
	onlyUID := t.TempDir()
	if err := os.Symlink(real.NewUIDMap, filepath.Join(onlyUID, "newuidmap")); err != nil {
		t.Fatal(err)
	}
	dirs := t.TempDir()
	for _, n := range []string{"newuidmap", "newgidmap"} {
		if err := os.Mkdir(filepath.Join(dirs, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name    string
		path    string
		chdir   string
		want    Helpers
		wantErr error
	}{
		{name: "empty PATH", path: "", wantErr: &HelperMissingError{Name: "newuidmap"}},
		{name: "not there", path: empty + "::" + empty, wantErr: &HelperMissingError{Name: "newuidmap", Searched: []string{empty, empty}}},
		{name: "relative dirs are ignored", path: ".:sub", chdir: linked, wantErr: &HelperMissingError{Name: "newuidmap"}},
		{name: "installed", path: empty + ":" + linked, want: Helpers{filepath.Join(linked, "newuidmap"), filepath.Join(linked, "newgidmap")}},
		{name: "unprivileged copy", path: plain, wantErr: &HelperNotPrivilegedError{Path: filepath.Join(plain, "newuidmap")}},
		{name: "setuid to another user", path: notRoot, wantErr: &HelperNotPrivilegedError{Path: filepath.Join(notRoot, "newuidmap")}},
		{name: "privileged copy later in PATH wins", path: plain + ":" + linked, want: Helpers{filepath.Join(linked, "newuidmap"), filepath.Join(linked, "newgidmap")}},
		{name: "first privileged copy wins", path: linked + ":" + plain, want: Helpers{filepath.Join(linked, "newuidmap"), filepath.Join(linked, "newgidmap")}},
		{name: "directories are not helpers", path: dirs + ":" + linked, want: Helpers{filepath.Join(linked, "newuidmap"), filepath.Join(linked, "newgidmap")}},
		{
			name: "only newuidmap", path: onlyUID,
			want:    Helpers{NewUIDMap: filepath.Join(onlyUID, "newuidmap")},
			wantErr: &HelperMissingError{Name: "newgidmap", Searched: []string{onlyUID}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.chdir != "" {
				t.Chdir(tt.chdir)
			}
			got, err := FindHelpers(tt.path)
			if got != tt.want {
				t.Errorf("Helpers = %+v, want %+v", got, tt.want)
			}
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatal(err)
				}
			case *HelperMissingError:
				var e *HelperMissingError
				if !errors.As(err, &e) || e.Name != want.Name || !slices.Equal(e.Searched, want.Searched) {
					t.Errorf("err = %#v, want %#v", err, want)
				}
			case *HelperNotPrivilegedError:
				var e *HelperNotPrivilegedError
				if !errors.As(err, &e) || *e != *want {
					t.Errorf("err = %#v, want %#v", err, want)
				}
			}
		})
	}
}

// TestFindHelpersFileCaps checks the other way distributions make the
// helpers privileged: a security.capability xattr instead of the setuid bit.
func TestFindHelpersFileCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting security.capability needs CAP_SETFCAP; covered when the unit tests run as root")
	}
	dir := t.TempDir()
	// struct vfs_cap_data, revision 2 (linux/capability.h): effective flag,
	// permitted = CAP_SETUID | CAP_SETGID.
	data := make([]byte, 20)
	binary.LittleEndian.PutUint32(data[0:], 0x02000000|0x1)
	binary.LittleEndian.PutUint32(data[4:], 1<<unix.CAP_SETUID|1<<unix.CAP_SETGID)
	for _, n := range []string{"newuidmap", "newgidmap"} {
		p := writeExec(t, dir, n, "#!/bin/sh\n")
		if err := unix.Setxattr(p, "security.capability", data, 0); err != nil {
			t.Skipf("cannot set file capabilities on %s: %v", dir, err)
		}
	}
	h, err := FindHelpers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Helpers{filepath.Join(dir, "newuidmap"), filepath.Join(dir, "newgidmap")}); h != want {
		t.Errorf("Helpers = %+v, want %+v", h, want)
	}
}

// fakeHelper records how it was run next to itself, writes a lot to stdout
// and stderr, and exits with the status named in its file name's suffix
// directory (see fakeHelpers).
const fakeHelper = `#!/bin/sh
d=$(dirname "$0"); n=$(basename "$0")
echo "$@" > "$d/$n.args"
echo "PATH=$PATH LC_ALL=$LC_ALL LEAK=$IDMAP_TEST_LEAK" > "$d/$n.env"
cat > "$d/$n.stdin"
echo "to stdout"
head -c 10000 /dev/zero | tr '\0' x >&2
exit $(cat "$d/$n.status")
`

// fakeHelpers installs fake newuidmap and newgidmap that exit with the
// given statuses.
func fakeHelpers(t *testing.T, uidStatus, gidStatus int) (string, Helpers) {
	t.Helper()
	dir := t.TempDir()
	h := Helpers{writeExec(t, dir, "newuidmap", fakeHelper), writeExec(t, dir, "newgidmap", fakeHelper)}
	writeFile(t, dir, "newuidmap.status", strconv.Itoa(uidStatus))
	writeFile(t, dir, "newgidmap.status", strconv.Itoa(gidStatus))
	return dir, h
}

func TestApplyRunsHelpersCleanly(t *testing.T) {
	t.Setenv("IDMAP_TEST_LEAK", "leaked")
	dir, h := fakeHelpers(t, 0, 0)
	uids := []specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 1000, 1)}
	gids := []specs.LinuxIDMapping{m(0, 200000, 65536)}
	if err := Apply(t.Context(), 4242, uids, gids, h); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{"newuidmap.args", "4242 0 100000 1000 1000 1000 1\n"},
		{"newgidmap.args", "4242 0 200000 65536\n"},
		{"newuidmap.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C LEAK=\n"},
		{"newgidmap.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C LEAK=\n"},
		{"newuidmap.stdin", ""},
		{"newgidmap.stdin", ""},
	} {
		if got := readString(t, filepath.Join(dir, c.file)); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
}

func TestApplyHelperFails(t *testing.T) {
	tests := []struct {
		name                 string
		uidStatus, gidStatus int
		failed               []string // helpers reported, in order
	}{
		{name: "newuidmap", uidStatus: 1, failed: []string{"newuidmap"}},
		{name: "newgidmap", gidStatus: 3, failed: []string{"newgidmap"}},
		{name: "both, joined, uid first", uidStatus: 1, gidStatus: 2, failed: []string{"newuidmap", "newgidmap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := fakeHelpers(t, tt.uidStatus, tt.gidStatus)
			err := Apply(t.Context(), 4242, PlanSingle(1000), PlanSingle(1000), h)
			var hes []*HelperError
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					hes = append(hes, e.(*HelperError))
				}
			} else if he, ok := err.(*HelperError); ok {
				hes = append(hes, he)
			}
			if len(hes) != len(tt.failed) {
				t.Fatalf("err = %v, want HelperErrors from %v", err, tt.failed)
			}
			for i, he := range hes {
				name := filepath.Base(he.Path)
				status := tt.uidStatus
				if name == "newgidmap" {
					status = tt.gidStatus
				}
				if name != tt.failed[i] || he.ExitCode != status {
					t.Errorf("HelperError %d: %s exit %d, want %s exit %d", i, name, he.ExitCode, tt.failed[i], status)
				}
				if !slices.Equal(he.Args, []string{"4242", "1000", "1000", "1"}) {
					t.Errorf("Args = %q", he.Args)
				}
				if he.Stderr != strings.Repeat("x", 4096) {
					t.Errorf("Stderr: %d bytes, want the first 4096", len(he.Stderr))
				}
			}
		})
	}
}

func TestApplyHonorsContext(t *testing.T) {
	dir := t.TempDir()
	slow := Helpers{
		writeExec(t, dir, "newuidmap", "#!/bin/sh\nexec sleep 30\n"),
		writeExec(t, dir, "newgidmap", "#!/bin/sh\nexec sleep 30\n"),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Apply(ctx, 4242, PlanSingle(0), PlanSingle(0), slow)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Apply took %v after its context ended", took)
	}
	var he *HelperError
	if !errors.As(err, &he) || !errors.Is(err, context.DeadlineExceeded) || he.ExitCode != -1 {
		t.Errorf("err = %#v, want a *HelperError wrapping context.DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if err := Apply(ctx, 4242, PlanSingle(0), PlanSingle(0), slow); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestApplyRefusesBadInput(t *testing.T) {
	h := Helpers{"/usr/bin/newuidmap", "/usr/bin/newgidmap"}
	tests := []struct {
		name       string
		pid        int
		uids, gids []specs.LinuxIDMapping
		h          Helpers
	}{
		{name: "pid 0", pid: 0, uids: PlanSingle(0), gids: PlanSingle(0), h: h},
		{name: "relative helper", pid: 1, uids: PlanSingle(0), gids: PlanSingle(0), h: Helpers{"newuidmap", h.NewGIDMap}},
		{name: "no helper", pid: 1, uids: PlanSingle(0), gids: PlanSingle(0), h: Helpers{h.NewUIDMap, ""}},
		{name: "no uid mappings", pid: 1, uids: nil, gids: PlanSingle(0), h: h},
		{name: "no gid mappings", pid: 1, uids: PlanSingle(0), gids: []specs.LinuxIDMapping{}, h: h},
	}
	for _, tt := range tests {
		err := Apply(t.Context(), tt.pid, tt.uids, tt.gids, tt.h)
		var he *HelperError
		if err == nil || errors.As(err, &he) {
			t.Errorf("%s: err = %v, want a refusal before running anything", tt.name, err)
		}
	}
}

// TestApplyNoSuchProcess runs the installed helpers on a pid above any
// pid_max (proc(5): at most 2^22), so they must fail and say why.
func TestApplyNoSuchProcess(t *testing.T) {
	h := realHelpers(t)
	const pid = 1 << 30
	err := Apply(t.Context(), pid, PlanSingle(0), PlanSingle(0), h)
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) != 2 {
		t.Fatalf("err = %v, want both helpers' errors joined", err)
	}
	for i, e := range j.Unwrap() {
		he, ok := e.(*HelperError)
		if !ok {
			t.Fatalf("error %d = %#v, want *HelperError", i, e)
		}
		name := []string{"newuidmap", "newgidmap"}[i]
		if he.Path != []string{h.NewUIDMap, h.NewGIDMap}[i] || he.ExitCode <= 0 || strings.TrimSpace(he.Stderr) == "" {
			t.Errorf("%s: %#v, want a non-zero exit and a message", name, he)
		}
		prefix := name + " 1073741824 0 0 1: exit status " + strconv.Itoa(he.ExitCode) + ": "
		if msg := he.Error(); !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, strings.TrimSpace(he.Stderr)) {
			t.Errorf("Error() = %q, want %q followed by the helper's stderr", msg, prefix)
		}
	}
}

// startInUserns starts a process in a new user namespace whose maps are
// not written yet, and kills it when the test ends.
func startInUserns(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if err := cmd.Start(); err != nil {
		skipf(t, "cannot create a user namespace here (sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

func TestApplyRealChild(t *testing.T) {
	h := realHelpers(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())

	t.Run("own ids", func(t *testing.T) {
		pid := startInUserns(t)
		if err := Apply(t.Context(), pid, PlanSingle(uid), PlanSingle(gid), h); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			file string
			id   uint32
		}{{"uid_map", uid}, {"gid_map", gid}} {
			got := strings.Fields(readString(t, filepath.Join("/proc", strconv.Itoa(pid), c.file)))
			want := []string{strconv.Itoa(int(c.id)), strconv.Itoa(int(c.id)), "1"}
			if !slices.Equal(got, want) {
				t.Errorf("%s = %q, want %q", c.file, got, want)
			}
		}
	})

	t.Run("ids not delegated", func(t *testing.T) {
		pid := startInUserns(t)
		// Nobody delegates the top of the id space.
		uids := []specs.LinuxIDMapping{m(0, uid, 1), m(1, 4294000000, 10)}
		err := Apply(t.Context(), pid, uids, PlanSingle(gid), h)
		var he *HelperError
		if !errors.As(err, &he) {
			t.Fatalf("err = %v, want *HelperError", err)
		}
		if he.Path != h.NewUIDMap || he.ExitCode <= 0 || strings.TrimSpace(he.Stderr) == "" {
			t.Errorf("HelperError = %#v, want newuidmap failing with a message", he)
		}
		t.Logf("newuidmap said: %s", strings.TrimSpace(he.Stderr))
	})
}

func TestHelperErrorStrings(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{
			&HelperError{Path: "/usr/bin/newuidmap", Args: []string{"1234", "0", "100000", "1000"}, ExitCode: 1,
				Stderr: "newuidmap: write to uid_map failed: Operation not permitted\n", Err: errors.New("exit status 1")},
			"newuidmap 1234 0 100000 1000: exit status 1: newuidmap: write to uid_map failed: Operation not permitted",
		},
		{
			&HelperError{Path: "/usr/bin/newgidmap", Args: []string{"1", "0", "0", "1"}, ExitCode: 2, Stderr: "a\nb\n"},
			"newgidmap 1 0 0 1: exit status 2: a; b",
		},
		{
			&HelperError{Path: "/usr/bin/newgidmap", Args: []string{"1", "0", "0", "1"}, ExitCode: -1, Err: context.Canceled},
			"newgidmap 1 0 0 1: context canceled",
		},
		{&HelperMissingError{Name: "newuidmap", Searched: []string{"/usr/local/bin", "/usr/bin"}}, "newuidmap not found in /usr/local/bin:/usr/bin"},
		{&HelperMissingError{Name: "newgidmap"}, "newgidmap not found: no absolute directory in PATH"},
		{&HelperNotPrivilegedError{Path: "/opt/bin/newuidmap"}, "/opt/bin/newuidmap: not setuid root and no file capabilities"},
		{&HelperNotPrivilegedError{Path: "/home/ada/bin/newuidmap", NoSUID: true}, "/home/ada/bin/newuidmap: on a file system mounted nosuid"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() =\n  %q\nwant\n  %q", got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	real := realHelpers(t)
	helpers := t.TempDir()
	for _, p := range []string{real.NewUIDMap, real.NewGIDMap} {
		if err := os.Symlink(p, filepath.Join(helpers, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	want := Helpers{filepath.Join(helpers, "newuidmap"), filepath.Join(helpers, "newgidmap")}
	noHelpers := t.TempDir()
	etc := t.TempDir()
	subuid := writeFile(t, etc, "subuid", "ada:100000:65536\n")
	subgid := writeFile(t, etc, "subgid", "ada:200000:65536\n")
	empty := writeFile(t, etc, "empty", "")

	t.Run("full", func(t *testing.T) {
		d := decide(helpers, subuid, subgid, "ada", 1000, 100)
		if !d.Full || d.Reason != nil || d.Helpers != want {
			t.Fatalf("Decision = %+v, want Full with %+v", d, want)
		}
		if !slices.Equal(d.SubUIDs, []Range{{100000, 65536}}) || !slices.Equal(d.SubGIDs, []Range{{200000, 65536}}) {
			t.Errorf("ranges = %v, %v", d.SubUIDs, d.SubGIDs)
		}
		if !slices.Equal(d.UIDs, PlanKeepID(1000, d.SubUIDs)) || !slices.Equal(d.GIDs, PlanKeepID(100, d.SubGIDs)) {
			t.Errorf("maps = %v, %v", d.UIDs, d.GIDs)
		}
	})

	tests := []struct {
		name            string
		path            string
		subuid, subgid  string
		reason          any
		helpers         Helpers
		subUIDs, subGID []Range
	}{
		{name: "no helpers", path: noHelpers, subuid: subuid, subgid: subgid, reason: &HelperMissingError{},
			subUIDs: []Range{{100000, 65536}}, subGID: []Range{{200000, 65536}}},
		{name: "no uid range", path: helpers, subuid: empty, subgid: subgid, reason: &NoRangeError{Kind: UID, User: "ada", ID: 1000, File: empty},
			helpers: want, subGID: []Range{{200000, 65536}}},
		{name: "no gid range", path: helpers, subuid: subuid, subgid: empty, reason: &NoRangeError{Kind: GID, User: "ada", ID: 100, File: empty},
			helpers: want, subUIDs: []Range{{100000, 65536}}},
		{name: "helpers are reported first", path: noHelpers, subuid: empty, subgid: empty, reason: &HelperMissingError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(tt.path, tt.subuid, tt.subgid, "ada", 1000, 100)
			if d.Full {
				t.Fatalf("Full with %+v", d)
			}
			switch want := tt.reason.(type) {
			case *HelperMissingError:
				var e *HelperMissingError
				if !errors.As(d.Reason, &e) {
					t.Errorf("Reason = %v, want *HelperMissingError", d.Reason)
				}
			case *NoRangeError:
				var e *NoRangeError
				if !errors.As(d.Reason, &e) || *e != *want {
					t.Errorf("Reason = %v, want %v", d.Reason, want)
				}
			}
			if d.Helpers != tt.helpers || !slices.Equal(d.SubUIDs, tt.subUIDs) || !slices.Equal(d.SubGIDs, tt.subGID) {
				t.Errorf("Decision = %+v", d)
			}
			if !slices.Equal(d.UIDs, PlanSingle(1000)) || !slices.Equal(d.GIDs, PlanSingle(100)) {
				t.Errorf("maps = %v, %v, want single maps", d.UIDs, d.GIDs)
			}
		})
	}
}

// TestFindHelpersNoSUID checks that a setuid-root helper on a nosuid mount
// counts as unprivileged. It mounts a nosuid tmpfs in a private mount
// namespace (so the host sees nothing) and runs itself again in there.
func TestFindHelpersNoSUID(t *testing.T) {
	if dir := os.Getenv("IDMAP_TEST_NOSUID_DIR"); dir != "" {
		_, err := FindHelpers(dir)
		want := &HelperNotPrivilegedError{Path: filepath.Join(dir, "newuidmap"), NoSUID: true}
		var e *HelperNotPrivilegedError
		if !errors.As(err, &e) || *e != *want {
			t.Fatalf("err = %#v, want %#v", err, want)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a nosuid tmpfs needs root; covered when the unit tests run as root")
	}
	real := realHelpers(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		skipf(t, "no unshare(1) (util-linux): %v", err)
	}
	dir := t.TempDir()
	script := `mount -t tmpfs -o nosuid idmap-test "$1" && cp -p "$2" "$3" "$1"/ && chmod 4755 "$1"/newuidmap "$1"/newgidmap && exec "$4" -test.run='^TestFindHelpersNoSUID$' -test.v`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir, real.NewUIDMap, real.NewGIDMap, os.Args[0])
	cmd.Env = append(os.Environ(), "IDMAP_TEST_NOSUID_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFindHelpersNoSUID") {
		t.Fatalf("in a mount namespace: %v\n%s", err, out)
	}
}
