package security

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// The kernel interfaces the default profile hides. Which exist depends on
// the kernel's configuration (this project's CI kernel has no
// CONFIG_PROC_KCORE and no CONFIG_MAGIC_SYSRQ), so an absent one is
// logged, not failed; but at least minPresent masked files must exist, so
// the test can never pass by checking nothing.
var (
	maskedFiles   = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", "/proc/interrupts"}
	maskedDirs    = []string{"/proc/acpi", "/proc/scsi"}
	readOnlyPaths = []string{"/proc/sys", "/proc/sysrq-trigger"}
)

const minPresent = 2

// mountPoints returns the mount points of /proc/PID/mountinfo text, each
// with its per-mount options.
func mountPoints(mountinfo string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		if len(f) > 5 {
			out[f[4]] = f[5]
		}
	}
	return out
}

func hasOpt(opts, opt string) bool {
	return slices.Contains(strings.Split(opts, ","), opt)
}

// procAttack runs try inside with the tokens, then prints the mount table
// after a "---" line.
func procAttack(t *testing.T, flags []string, tokens []string) (res, detail, mounts map[string]string) {
	t.Helper()
	wd := t.TempDir()
	tryIn(t, wd)
	script := "./try call " + strings.Join(quoteAll(tokens), " ") + "; echo ---; cat /proc/self/mountinfo"
	args := append(append([]string{"run"}, flags...), "--", "sh", "-c", script)
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, args...)
	e2e.WantExit(t, r, 0)
	calls, mi, ok := strings.Cut(r.Stdout, "---\n")
	if !ok {
		t.Fatalf("unexpected output\n%s", r)
	}
	res, detail = tryResults(calls)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", r)
		}
	})
	return res, detail, mountPoints(mi)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = e2e.ShQuote(s)
	}
	return out
}

// present returns the paths that exist on this kernel and logs the others.
// With must, fewer than minPresent existing paths fails the test.
func present(t *testing.T, must bool, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
			continue
		}
		t.Logf("%s does not exist on this kernel; its mask is not checked", p)
	}
	if must && len(out) < minPresent {
		t.Fatalf("only %d of %v exist on this kernel; want at least %d to check", len(out), paths, minPresent)
	}
	return out
}

// Guards against host kernel information leaks and kernel attack through
// /proc (kcore is kernel memory, keys and timer_list leak host keyring and
// timer details, sysrq-trigger crashes or reboots the host, /proc/sys
// holds writable kernel knobs): masked files read as empty, masked
// directories are empty and read-only, read-only paths refuse writes, and
// none of it can be unmounted to uncover the real file.
func TestProcMasksHold(t *testing.T) {
	e2e.RequireUnprivileged(t)
	files := present(t, true, maskedFiles)
	dirs := present(t, false, maskedDirs)
	ro := present(t, false, readOnlyPaths)
	if len(dirs) == 0 || len(ro) == 0 {
		t.Fatalf("no masked directory (%v) or no read-only path (%v) exists on this kernel to check", maskedDirs, readOnlyPaths)
	}
	var tokens []string
	for _, p := range files {
		tokens = append(tokens, "read:"+p, "stat:"+p, "write:"+p, "trunc:"+p, "umount2:"+p, "umount2-detach:"+p)
	}
	for _, p := range dirs {
		tokens = append(tokens, "opendir:"+p, "create:"+p+"/sectest", "umount2:"+p, "umount2-detach:"+p)
	}
	for _, p := range ro {
		if p == "/proc/sys" {
			// O_TRUNC makes the kernel check the mount before the file's
			// permissions: EROFS from a read-only mount, EACCES otherwise.
			tokens = append(tokens, "trunc:/proc/sys/kernel/hostname")
		} else {
			// Opening only: a write to sysrq-trigger acts on the host.
			tokens = append(tokens, "openw:"+p)
		}
		tokens = append(tokens, "umount2:"+p, "umount2-detach:"+p)
	}
	if len(tokens) == 0 {
		t.Fatalf("none of %v exists here", slices.Concat(maskedFiles, maskedDirs, readOnlyPaths))
	}
	res, detail, mounts := procAttack(t, nil, tokens)

	for _, p := range files {
		t.Run(strings.TrimPrefix(p, "/proc/"), func(t *testing.T) {
			if res["read:"+p] != "OK" || detail["read:"+p] != "bytes=0" {
				t.Errorf("read %s: %s %s, want OK bytes=0 (masked)", p, res["read:"+p], detail["read:"+p])
			}
			if _, ok := mounts[p]; !ok {
				t.Errorf("%s is not a mount point inside", p)
			}
			isNull := strings.HasPrefix(detail["stat:"+p], "type=chr rdev=1:3 ")
			for _, w := range []string{"write:" + p, "trunc:" + p} {
				if res[w] == "OK" && !isNull {
					t.Errorf("%s: a write succeeded and %s is not /dev/null (%s)", w, p, detail["stat:"+p])
				}
				if res[w] == "OK" && isNull {
					t.Logf("%s: OK: the write went to the /dev/null mask and was discarded (the contract says writes fail)", w)
				}
			}
			wantUmountEPERM(t, res, p)
		})
	}
	for _, p := range dirs {
		t.Run(strings.TrimPrefix(p, "/proc/"), func(t *testing.T) {
			if host, err := os.ReadDir(p); err == nil && len(host) == 0 {
				t.Logf("%s is empty on the host too: the emptiness check proves less", p)
			}
			if res["opendir:"+p] != "OK" || detail["opendir:"+p] != "entries=" {
				t.Errorf("list %s: %s %s, want OK and no entries (masked)", p, res["opendir:"+p], detail["opendir:"+p])
			}
			if res["create:"+p+"/sectest"] == "OK" {
				t.Errorf("created a file in masked %s", p)
			}
			if opts, ok := mounts[p]; !ok || !hasOpt(opts, "ro") {
				t.Errorf("%s: want a read-only mount inside, got %q (mounted: %v)", p, opts, ok)
			}
			wantUmountEPERM(t, res, p)
		})
	}
	for _, p := range ro {
		t.Run(strings.TrimPrefix(p, "/proc/"), func(t *testing.T) {
			if p == "/proc/sys" {
				if got := res["trunc:/proc/sys/kernel/hostname"]; got != "EROFS" {
					t.Errorf("writing /proc/sys/kernel/hostname: %s, want EROFS (read-only mount)", got)
				}
			} else if res["openw:"+p] == "OK" {
				t.Errorf("opened %s for writing", p)
			}
			if opts, ok := mounts[p]; !ok || !hasOpt(opts, "ro") {
				t.Errorf("%s: want a read-only mount inside, got %q (mounted: %v)", p, opts, ok)
			}
			wantUmountEPERM(t, res, p)
		})
	}
}

func wantUmountEPERM(t *testing.T, res map[string]string, p string) {
	t.Helper()
	for _, tok := range []string{"umount2:" + p, "umount2-detach:" + p} {
		if res[tok] != "EPERM" {
			t.Errorf("%s: %q, want EPERM", tok, res[tok])
		}
	}
}

// Guards the masks against a command that holds CAP_SYS_ADMIN in its user
// namespace (--cap-add SYS_ADMIN): the kernel would let it unmount the
// sandbox's own masks, remount /proc/sys read-write or mount a fresh proc,
// so only the filter stands in the way, and it must.
func TestProcMasksHoldWithSysAdmin(t *testing.T) {
	e2e.RequireUnprivileged(t)
	files := present(t, false, maskedFiles)
	e2e.RequireX(t, len(files) > 0, "none of %v exists here", maskedFiles)
	p := files[0]
	res, detail, _ := procAttack(t, []string{"--cap-add", "SYS_ADMIN"},
		[]string{"umount2:" + p, "umount2-detach:" + p, "umount2-detach:/proc/sys", "umount2-detach:/proc", "mount", "fsopen", "open_tree", "read:" + p})
	for _, tok := range []string{"umount2:" + p, "umount2-detach:" + p, "umount2-detach:/proc/sys", "umount2-detach:/proc", "mount", "fsopen", "open_tree"} {
		if res[tok] != "EPERM" {
			t.Errorf("with CAP_SYS_ADMIN: %s: %q, want EPERM", tok, res[tok])
		}
	}
	if res["read:"+p] != "OK" || detail["read:"+p] != "bytes=0" {
		t.Errorf("read %s after the attempts: %s %s, want it still masked", p, res["read:"+p], detail["read:"+p])
	}
}

// Guards --security-opt mask= and unmask=: a mask the user adds hides the
// path, an unmask lifts exactly the one named (ALL lifts them all).
func TestProcMaskOptions(t *testing.T) {
	e2e.RequireUnprivileged(t)
	files := present(t, false, maskedFiles)
	e2e.RequireX(t, len(files) > 0, "none of %v exists here", maskedFiles)
	p := files[0]
	res, detail, mounts := procAttack(t, nil, []string{"read:/proc/cpuinfo"})
	if res["read:/proc/cpuinfo"] != "OK" || detail["read:/proc/cpuinfo"] == "bytes=0" {
		t.Fatalf("control: /proc/cpuinfo reads %s %s by default, want content", res["read:/proc/cpuinfo"], detail["read:/proc/cpuinfo"])
	}
	if _, ok := mounts[p]; !ok {
		t.Errorf("control: %s is not masked by default", p)
	}

	res, detail, _ = procAttack(t, []string{"--security-opt", "mask=/proc/cpuinfo"}, []string{"read:/proc/cpuinfo"})
	if res["read:/proc/cpuinfo"] != "OK" || detail["read:/proc/cpuinfo"] != "bytes=0" {
		t.Errorf("mask=/proc/cpuinfo: reads %s %s, want OK bytes=0", res["read:/proc/cpuinfo"], detail["read:/proc/cpuinfo"])
	}

	_, _, mounts = procAttack(t, []string{"--security-opt", "unmask=" + p}, nil)
	if _, ok := mounts[p]; ok {
		t.Errorf("unmask=%s: still a mount point inside", p)
	}
	for _, q := range files[1:] {
		if _, ok := mounts[q]; !ok {
			t.Errorf("unmask=%s also lifted the mask of %s", p, q)
		}
	}

	_, _, mounts = procAttack(t, []string{"--security-opt", "unmask=ALL"}, nil)
	for _, q := range files {
		if _, ok := mounts[q]; ok {
			t.Errorf("unmask=ALL: %s is still a mount point inside", q)
		}
	}
}

// Guards against overwriting our own binary from inside (CVE-2019-5736,
// runc's /proc/self/exe): PID 1 inside is sandbox itself, so
// /proc/1/exe, and everything else of PID 1 that leads to host files
// (fd/, root, cwd, map_files, mem, environ), must be closed to the
// command. README promises PID 1 is non-dumpable for exactly this.
func TestOwnBinaryNotReachableThroughProc(t *testing.T) {
	e2e.RequireUnprivileged(t)
	pid1 := []string{"openw:/proc/1/exe", "read:/proc/1/exe", "readlink:/proc/1/exe",
		"opendir:/proc/1/fd", "opendir:/proc/1/root", "readlink:/proc/1/root", "readlink:/proc/1/cwd",
		"opendir:/proc/1/map_files", "openw:/proc/1/mem", "read:/proc/1/environ"}
	for fd := 0; fd < 10; fd++ {
		pid1 = append(pid1, fmt.Sprintf("openw:/proc/1/fd/%d", fd))
	}

	check := func(t *testing.T, r e2e.Result) {
		t.Helper()
		e2e.WantExit(t, r, 0)
		res, detail := tryResults(r.Stdout)
		switch res["openw:/proc/1/exe"] {
		case "EACCES", "ETXTBSY", "EPERM":
		default:
			t.Errorf("open /proc/1/exe for writing: %q, want EACCES, ETXTBSY or EPERM", res["openw:/proc/1/exe"])
		}
		for _, tok := range pid1 {
			if res[tok] == "" {
				t.Errorf("%s: no answer", tok)
			} else if res[tok] == "OK" {
				t.Errorf("%s: OK (%s): PID 1's host-side files are reachable from inside", tok, detail[tok])
			}
		}
		// Every process inside, whatever its pid: writing its executable
		// through /proc must fail.
		for tok, v := range res {
			if strings.HasPrefix(tok, "openw:/proc/") && strings.HasSuffix(tok, "/exe") && v == "OK" {
				t.Errorf("%s: OK", tok)
			}
		}
		if t.Failed() {
			t.Logf("%s", r)
		}
	}
	script := `./try call ` + strings.Join(pid1, " ") + `
for p in /proc/[0-9]*; do ./try call "openw:$p/exe"; done`

	t.Run("installed-elsewhere", func(t *testing.T) {
		wd := t.TempDir()
		tryIn(t, wd)
		check(t, e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--", "sh", "-c", script))
	})

	// The binary lives in the work directory, which the sandbox binds
	// read-write on purpose: the file is the user's and writable at its
	// own path inside. Only the /proc/1/exe route is the sandbox's to
	// close; the direct path is reported, not judged (while sandbox runs,
	// the kernel refuses it with ETXTBSY).
	t.Run("installed-in-workdir", func(t *testing.T) {
		wd := t.TempDir()
		tryIn(t, wd)
		bin := filepath.Join(wd, "sandbox")
		e2e.CopyFile(t, e2e.Bin, bin, 0o755)
		before := fileSum(t, bin)
		r := e2e.RunBounded(t, e2e.RunOpts{Dir: wd}, bin, "run", "--", "sh", "-c",
			script+"\n./try call "+e2e.ShQuote("openw:"+bin))
		check(t, r)
		res, _ := tryResults(r.Stdout)
		t.Logf("direct path: open %s for writing from inside: %s", bin, res["openw:"+bin])
		if !bytes.Equal(before, fileSum(t, bin)) {
			t.Errorf("%s changed during the run", bin)
		}
	})
}

func fileSum(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return s[:]
}
