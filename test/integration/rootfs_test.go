package integration

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// treeListing lists every path below dir with its mode and size, to tell
// whether a run changed it.
func treeListing(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, strings.TrimPrefix(p, dir)+" "+fi.Mode().String()+" "+strconv.FormatInt(fi.Size(), 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// --rootfs runs a command in a root directory of its own: the caller is
// root inside, with the default capabilities, the directory's files are
// the root's, writes land in a layer thrown away at exit and the
// directory itself never changes.
func TestRootfsRunsAsRootOfItsOwn(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	root := e2e.BusyboxRoot(t)
	before := treeListing(t, root)
	o := e2e.RunOpts{}
	r := e2e.RunSandbox(t, o, "run", "--rootfs", root, "--", "sh", "-c",
		`id -u; cat /etc/hostname; stat -c %u /etc/passwd; echo new > /made; cat /made; rm /etc/group; ls /etc; grep CapEff /proc/self/status; pwd; ls / | wc -l; touch /tmp/x && echo tmp-ok`)
	e2e.WantExit(t, r, 0)
	got := e2e.Lines(r.Stdout)
	want := []string{"0", "image", "0", "new", "hostname", "passwd", "CapEff:\t00000000800405fb", "/"}
	if len(got) < len(want)+2 {
		t.Fatalf("output:\n%s", r)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d = %q, want %q\n%s", i+1, got[i], w, r)
		}
	}
	if got[len(got)-1] != "tmp-ok" {
		t.Errorf("/tmp of the root is not writable:\n%s", r)
	}
	if after := treeListing(t, root); after != before {
		t.Errorf("the root directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A second run starts from the directory again.
	r = e2e.RunSandbox(t, o, "run", "--rootfs", root, "--", "sh", "-c", "ls /made /etc/group 2>&1; true")
	if !strings.Contains(r.Stdout, "/etc/group") || strings.Contains(r.Stdout, "/made\n") {
		t.Errorf("a write of the first run is visible in the second:\n%s", r)
	}
}

// -u picks the user inside, by name from the root's own /etc/passwd or
// by id; such a user holds no capabilities.
func TestRootfsUser(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	root := e2e.BusyboxRoot(t)
	for _, tc := range []struct{ user, want string }{
		{"ada", "1000 1000 /home/ada CapEff:\t0000000000000000"},
		{"ada:staff", "1000 50 /home/ada CapEff:\t0000000000000000"},
		{"4000:5000", "4000 5000 / CapEff:\t0000000000000000"},
		{"root", "0 0 /root CapEff:\t00000000800405fb"},
	} {
		r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--rootfs", root, "-u", tc.user, "--", "sh", "-c",
			`echo $(id -u) $(id -g) $HOME $(grep CapEff /proc/self/status)`)
		e2e.WantExit(t, r, 0)
		if got := strings.TrimSpace(r.Stdout); got != strings.ReplaceAll(tc.want, "\t", " ") {
			t.Errorf("-u %s: %q, want %q", tc.user, got, tc.want)
		}
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--rootfs", root, "-u", "grace", "--", "true")
	e2e.WantSandboxError(t, r, `no user "grace" in the root's /etc/passwd`)
}

// --read-only: nothing in the root is writable, the kernel's mounts on it
// work as before.
func TestRootfsReadOnly(t *testing.T) {
	e2e.RequireUnprivileged(t)
	requireSubIDs(t)
	root := e2e.BusyboxRoot(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--rootfs", root, "--read-only", "--", "sh", "-c",
		`touch /x 2>&1; touch /tmp/x 2>&1; ls /proc/self/ns | wc -l; echo ok > /dev/shm/y && cat /dev/shm/y`)
	e2e.WantExit(t, r, 0)
	lines := e2e.Lines(r.Stdout)
	if len(lines) != 4 || !strings.Contains(lines[0], "Read-only file system") || !strings.Contains(lines[1], "Read-only file system") || lines[3] != "ok" {
		t.Errorf("--read-only:\n%s", r)
	}
}

func TestRootfsErrors(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	file := filepath.Join(wd, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rootfs", filepath.Join(wd, "missing")}, "no such file or directory"},
		{[]string{"--rootfs", file}, "not a directory"},
		{[]string{"--read-only"}, "--read-only and --user need a root of the sandbox's own"},
	} {
		r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, append(append([]string{"run"}, tc.args...), "--", "true")...)
		e2e.WantSandboxError(t, r, tc.want)
	}
}
