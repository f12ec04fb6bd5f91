package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/e2e"
	"sandbox/internal/registry"
	"sandbox/internal/testimage"
)

// Guards shared use of one store: ten pulls of the same image, none of it
// in the store yet, at once. All succeed, and the store holds one image
// and one copy of each layer.
func TestConcurrentPulls(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	layers := testimage.MultiLayerLayers()
	ref := pushLayout(t, reg, layoutOf(t, "multi", layers...), "multi", "test/multi:1")
	const n = 10
	results := make([]e2e.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e2e.RunProg(e2e.RunOpts{Dir: t.TempDir(), Timeout: pullTimeout}, e2e.Bin, s.args("pull", "-q", "--tls-verify=false", ref)...)
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for i := range n {
		if errs[i] != nil || results[i].Code != 0 {
			t.Errorf("pull %d: %v\n%s", i, errs[i], results[i])
			continue
		}
		ids[strings.TrimSpace(results[i].Stdout)] = true
	}
	if len(ids) != 1 {
		t.Errorf("pulls printed ids %v, want one", ids)
	}
	if imgs := s.images(); len(imgs) != 1 {
		t.Errorf("images %+v, want one", imgs)
	}
	ls := s.layers()
	seen := map[string]int{}
	for _, l := range ls {
		seen[l.UncompressedDigest]++
	}
	if len(ls) != len(layers) || len(seen) != len(layers) {
		t.Errorf("store holds %d layers %v, want one each of %d", len(ls), seen, len(layers))
	}
	if d := s.layerDirs(); len(d) != len(layers) {
		t.Errorf("layer directories %v, want %d", d, len(layers))
	}
	s.wantNoTemp("after concurrent pulls")
}

// Guards recovery from a pull killed mid-layer: with the registry behind
// a throttle, the pull is killed with SIGKILL once part of the big layer
// has arrived; the next pull succeeds and nothing of the first is left:
// no temporary directory, no incomplete layer, a store that works.
func TestKilledPullRecovers(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	const size = 4 << 20
	big := testimage.Layer{
		{Kind: testimage.Dir, Path: "data", Mode: 0o755},
		{Kind: testimage.File, Path: "data/big", Data: noise(size), Mode: 0o644},
	}
	small := testimage.Layer{{Kind: testimage.File, Path: "small", Data: []byte("s\n"), Mode: 0o644}}
	pushLayout(t, reg, layoutOf(t, "big", small, big), "big", "test/big:1")
	// 1 MiB/s: the big layer takes four seconds through the proxy.
	slow := registry.ThrottledProxy(t, reg.Addr, 1<<20)

	cmd, stderr := startSandbox(t, s.args("pull", "--tls-verify=false", slow+"/test/big:1")...)
	helper := waitChild(t, cmd.Process.Pid, "sandbox-store", 30*time.Second)
	// Part-way through the layer: the helper's unnamed spool file holds
	// some of the blob, not all of it.
	got := waitSpool(t, helper, 256<<10, size/2, 60*time.Second)
	t.Logf("killing the pull with %d bytes of the %d-byte layer spooled", got, size)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for e2e.Running(helper) {
		if time.Now().After(deadline) {
			t.Fatalf("store helper %d outlived the killed CLI\n%s", helper, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	r := s.ok("pull", "-q", "--tls-verify=false", reg.Addr+"/test/big:1")
	if len(strings.TrimSpace(r.Stdout)) != 64 {
		t.Fatalf("pull after the kill:\n%s", r)
	}
	ls := s.layers()
	if len(ls) != 2 {
		t.Errorf("layers %+v, want the image's 2", ls)
	}
	for _, l := range ls {
		if l.Flags["incomplete"] != nil {
			t.Errorf("layer %s still flagged incomplete", l.ID)
		}
	}
	if d := s.layerDirs(); len(d) != 2 {
		t.Errorf("layer directories %v, want 2", d)
	}
	s.wantNoTemp("after the killed pull")
	if imgs := s.images(); len(imgs) != 1 {
		t.Errorf("images %+v, want one", imgs)
	}
	s.ok("rmi", reg.Addr+"/test/big:1")
	s.wantEmpty("after rmi")
}

// noise is n bytes that do not compress, the same on every run.
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// waitChild waits for the child of pid whose argv[0] ends in name.
func waitChild(t *testing.T, pid int, name string, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			c, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
			if err != nil {
				continue
			}
			s := string(stat)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) < 2 || f[1] != strconv.Itoa(pid) {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
			if strings.HasSuffix(strings.SplitN(string(cmdline), "\x00", 2)[0], name) {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s child of %d within %v", name, pid, d)
	return 0
}

// waitSpool waits until an unnamed temporary file of pid holds between lo
// and hi bytes and returns its size.
func waitSpool(t *testing.T, pid int, lo, hi int64, d time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(d)
	var last int64
	for time.Now().Before(deadline) {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("store helper gone before the layer arrived: %v", err)
		}
		for _, e := range ents {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			if !strings.Contains(target, "(deleted)") && !strings.Contains(target, "#") {
				continue
			}
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(dir, e.Name()), &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
				last = st.Size
				if st.Size >= lo && st.Size <= hi {
					return st.Size
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no spool file of %d between %d and %d bytes within %v (last %d)", pid, lo, hi, d, last)
	return 0
}

// A pull that fills the file system under the store fails saying so,
// with the path, and leaves no partial layer: the space is free again
// and the store lists no image. The store is on a 3 MiB tmpfs in a user
// and mount namespace of the test's (unshare), where newuidmap does not
// work and the helper maps only the caller.
func TestPullDiskFull(t *testing.T) {
	unshare := e2e.RequireTool(t, "unshare")
	reg := registry.Start(t)
	big := testimage.Layer{
		{Kind: testimage.Dir, Path: "data", Mode: 0o755},
		{Kind: testimage.File, Path: "data/big", Data: noise(4 << 20), Mode: 0o644},
	}
	small := testimage.Layer{{Kind: testimage.File, Path: "small", Data: []byte("s\n"), Mode: 0o644}}
	pushLayout(t, reg, layoutOf(t, "big", small, big), "big", "test/big:1")
	for _, size := range []string{"3m", "7m"} {
		t.Run(size, func(t *testing.T) { pullDiskFull(t, unshare, reg.Addr+"/test/big:1", size) })
	}
}

func pullDiskFull(t *testing.T, unshare, ref, size string) {
	dir := t.TempDir()
	script := `set -u
mount -t tmpfs -o size=` + size + `,mode=0755 tmpfs "$1" || exit 99
"$2" pull -q --tls-verify=false --root "$1/root" --runroot "$1/run" "$3"
echo "pull=$?" >&2
"$2" images --format json --root "$1/root" --runroot "$1/run" | tr -d " \n" | sed "s/^/images=/" >&2; echo >&2
df -k "$1" | awk 'NR==2 {print "usedk=" $3}' >&2`
	r := e2e.RunBounded(t, e2e.RunOpts{Timeout: pullTimeout}, unshare, "-Urm", "sh", "-c", script, "sh", dir, e2e.Bin, ref)
	if r.Code == 99 {
		t.Fatalf("cannot mount a tmpfs in a user namespace:\n%s", r)
	}
	t.Logf("%s", r.Stderr)
	if !strings.Contains(r.Stderr, "pull=125") {
		t.Fatalf("pull onto a full file system did not fail:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "no space left on the file system of the image store "+dir) {
		t.Errorf("the error does not say the disk is full, or where:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "images=[]") {
		t.Errorf("the failed pull left an image:\n%s", r.Stderr)
	}
	var used int
	for _, l := range e2e.Lines(r.Stderr) {
		if v, ok := strings.CutPrefix(l, "usedk="); ok {
			used, _ = strconv.Atoi(v)
		}
	}
	if used == 0 || used > 1024 {
		t.Errorf("%d KiB used after the failed pull: the partial layer stayed", used)
	}
}
