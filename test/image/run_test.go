package image

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
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

// runArgs is `sandbox run` on the test's store, with ARGS after the
// store flags (run stops reading flags at the image).
func (s *store) runArgs(args ...string) []string {
	a := []string{"run", "--root", s.root, "--runroot", s.runRoot}
	if s.overlay != "" {
		a = append(a, "--overlay="+s.overlay)
	}
	return append(a, args...)
}

// eachOverlay runs test once per root mode, kernel overlayfs and
// fuse-overlayfs, each with a store of its own. After a fuse-overlayfs
// subtest no daemon of its store may be left.
func eachOverlay(t *testing.T, test func(t *testing.T, s *store)) {
	for _, mode := range []string{"kernel", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "fuse" {
				e2e.RequireTool(t, "fuse-overlayfs")
				e2e.RequireTool(t, "nsenter")
			}
			s := newStore(t)
			s.overlay = mode
			if mode == "fuse" {
				t.Cleanup(func() { noDaemonsLeft(t, s) })
			}
			test(t, s)
		})
	}
}

// fuseDaemons lists our fuse-overlayfs processes serving s's layers.
func fuseDaemons(s *store) []int {
	return processes(func(comm, cmdline string) bool {
		return comm == "fuse-overlayfs" && strings.Contains(cmdline, s.root)
	})
}

// processes lists the pids of the processes, in /proc, whose command
// name and NUL-separated command line match.
func processes(match func(comm, cmdline string) bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if match(strings.TrimSpace(string(comm)), string(cmdline)) {
			out = append(out, pid)
		}
	}
	return out
}

// noDaemonsLeft fails t when a daemon of s outlives, by 5 s, the run that
// started it.
func noDaemonsLeft(t *testing.T, s *store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(fuseDaemons(s)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if d := fuseDaemons(s); len(d) > 0 {
		t.Errorf("fuse-overlayfs still running after its sandbox: pids %v", d)
	}
}

// rootFSType is what the command sees mounted at /: "overlay" or "fuse".
const rootFSType = `sed -n 's/^[^ ]* [^ ]* [^ ]* [^ ]* \/ .* - \([^ ]*\) .*/\1/p' /proc/self/mountinfo`

// containers counts the storage containers in the store.
func (s *store) containers() int {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.root, "overlay-containers", "containers.json"))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		s.t.Fatal(err)
	}
	var cs []json.RawMessage
	if err := json.Unmarshal(b, &cs); err != nil {
		s.t.Fatalf("containers.json: %v", err)
	}
	return len(cs)
}

// pushBusybox pushes the busybox image to reg as test/busybox:latest and
// returns its reference.
func pushBusybox(t *testing.T, reg *registry.Registry) string {
	t.Helper()
	return pushLayout(t, reg, testimage.BuildBusybox(t, "busybox"), "busybox", "test/busybox:latest")
}

func busyboxLayer(t *testing.T) testimage.Layer {
	t.Helper()
	p, err := testimage.FindBusybox()
	e2e.RequireX(t, err == nil, "%v", err)
	l, err := testimage.BusyboxLayer(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// An image not in the store is pulled by run (--pull=missing), its
// command runs as root of it, the exit code comes through, writes stay in
// the container, and --rm leaves no container behind.
func TestRunImage(t *testing.T) {
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	eachOverlay(t, func(t *testing.T, s *store) { runImage(t, s, reg, ref) })
}

func runImage(t *testing.T, s *store, reg *registry.Registry, ref string) {
	o := e2e.RunOpts{Timeout: pullTimeout}

	r := e2e.RunSandbox(t, o, s.runArgs("--rm", "--tls-verify=false", ref, "sh", "-c",
		`id -u; cat /etc/hostname; echo changed > /etc/hostname; echo new > /made; cat /made; pwd; exit 7`)...)
	e2e.WantExit(t, r, 7)
	got := e2e.Lines(r.Stdout)
	if len(got) != 4 || got[0] != "0" || got[2] != "new" || got[3] != "/" {
		t.Fatalf("run %s:\n%s", ref, r)
	}
	if len(s.images()) != 1 {
		t.Errorf("run did not pull %s: %+v", ref, s.images())
	}
	if n := s.containers(); n != 0 {
		t.Errorf("--rm left %d containers", n)
	}
	// The root is the overlay asked for, and its daemon, if any, is
	// nowhere in the sandbox.
	r = e2e.RunSandbox(t, o, s.runArgs("--rm", ref, "sh", "-c", rootFSType+`; cat /proc/[0-9]*/comm | sort -u`)...)
	e2e.WantExit(t, r, 0)
	want := map[string]string{"kernel": "overlay", "fuse": "fuse"}[s.overlay]
	if lines := e2e.Lines(r.Stdout); len(lines) == 0 || lines[0] != want || strings.Contains(r.Stdout, "fuse-overlayfs") {
		t.Errorf("--overlay=%s: root and processes inside:\n%s", s.overlay, r)
	}
	// The next container starts from the image again.
	r = e2e.RunSandbox(t, o, s.runArgs("--rm", ref, "sh", "-c", `cat /etc/hostname; ls /made 2>&1; true`)...)
	e2e.WantExit(t, r, 0)
	if lines := e2e.Lines(r.Stdout); len(lines) != 2 || lines[0] != got[1] || !strings.Contains(lines[1], "No such file") {
		t.Errorf("a second container sees the first one's writes:\n%s", r)
	}

	// Without --rm the container stays in the store.
	r = e2e.RunSandbox(t, o, s.runArgs("--name", "kept", ref, "true")...)
	e2e.WantExit(t, r, 0)
	if n := s.containers(); n != 1 {
		t.Errorf("without --rm: %d containers, want 1", n)
	}
	s.ok("rm", "kept")
	if n := s.containers(); n != 0 {
		t.Errorf("after sandbox rm: %d containers, want 0", n)
	}
	// A run that fails before its command starts leaves no container,
	// --rm or not.
	r = e2e.RunSandbox(t, o, s.runArgs("-u", "nosuchuser", ref, "true")...)
	e2e.WantSandboxError(t, r, `no user "nosuchuser"`)
	if n := s.containers(); n != 0 {
		t.Errorf("a run that never started left %d containers", n)
	}

	// --pull=never on an image that is not there fails and says which.
	r = e2e.RunSandbox(t, o, s.runArgs("--rm", "--pull=never", reg.Addr+"/test/absent:1", "true")...)
	e2e.WantSandboxError(t, r, "absent")
}

// Two containers of one image at once never see each other's writes.
func TestRunImageContainersIsolated(t *testing.T) {
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	eachOverlay(t, func(t *testing.T, s *store) { containersIsolated(t, s, ref) })
}

func containersIsolated(t *testing.T, s *store, ref string) {
	s.ok("pull", "--tls-verify=false", ref)
	o := e2e.RunOpts{Timeout: pullTimeout, Dir: t.TempDir()}
	// A writes, says so through a volume, and waits for B to be done.
	mark := t.TempDir()
	done := make(chan e2e.Result, 1)
	go func() {
		r, _ := e2e.RunProg(o, e2e.Bin, s.runArgs("--rm", "-v", mark+":/mark", ref, "sh", "-c",
			"echo A > /f; touch /mark/a-wrote; i=0; while [ ! -e /mark/b-done ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; cat /f")...)
		done <- r
	}()
	waitFile(t, filepath.Join(mark, "a-wrote"))
	b := e2e.RunSandbox(t, o, s.runArgs("--rm", ref, "sh", "-c", "cat /f 2>/dev/null; echo B > /f; cat /f")...)
	os.WriteFile(filepath.Join(mark, "b-done"), nil, 0o644)
	a := <-done
	e2e.WantExit(t, a, 0)
	e2e.WantExit(t, b, 0)
	if strings.TrimSpace(a.Stdout) != "A" || strings.TrimSpace(b.Stdout) != "B" {
		t.Errorf("containers share writes: A saw %q, B saw %q", a.Stdout, b.Stdout)
	}
}

// Files keep the owners and modes their layers give them, and the
// whiteouts of upper layers hide what lies below, as root of the
// container sees it.
func TestRunImageOwnershipAndWhiteouts(t *testing.T) {
	reg := registry.Start(t)
	layers := append([]testimage.Layer{busyboxLayer(t)}, testimage.MultiLayerLayers()...)
	ref := pushLayout(t, reg, testimage.Build(t, "multi", testimage.BusyboxConfig(), layers...), "multi", "test/multi:1")
	eachOverlay(t, func(t *testing.T, s *store) { ownershipAndWhiteouts(t, s, ref) })
}

func ownershipAndWhiteouts(t *testing.T, s *store, ref string) {
	var script strings.Builder
	want := map[string]string{}
	for _, f := range testimage.MultiLayerExpect() {
		if strings.Contains(f.Path, ".wh.") {
			continue
		}
		fmt.Fprintf(&script, "stat -c '%%n %%u:%%g %%a' /%s 2>/dev/null || echo /%s absent\n", f.Path, f.Path)
		if f.Absent {
			want["/"+f.Path] = "absent"
		} else if f.Kind != testimage.Symlink {
			want["/"+f.Path] = fmt.Sprintf("%d:%d %o", f.UID, f.GID, f.Mode&0o7777)
		}
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Timeout: pullTimeout}, s.runArgs("--rm", "--tls-verify=false", ref, "sh", "-c", script.String())...)
	e2e.WantExit(t, r, 0)
	got := map[string]string{}
	for _, l := range e2e.Lines(r.Stdout) {
		if p, rest, ok := strings.Cut(l, " "); ok {
			got[p] = rest
		}
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s inside: %q, want %q", p, got[p], w)
		}
	}
}

// The image's entrypoint, command, environment, working directory and
// user are used, and each flag overrides its part.
func TestRunImageConfig(t *testing.T) {
	reg := registry.Start(t)
	cfg := testimage.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{`echo "$(id -u) $(pwd) $GREETING $HOME" "$@"`, "default"},
		Env:        []string{"PATH=/bin", "GREETING=hello"},
		WorkingDir: "/home/ada",
		User:       "ada",
	}
	ref := pushLayout(t, reg, testimage.Build(t, "cfg", cfg, busyboxLayer(t)), "cfg", "test/cfg:1")
	eachOverlay(t, func(t *testing.T, s *store) { imageConfig(t, s, ref) })
}

func imageConfig(t *testing.T, s *store, ref string) {
	vol := t.TempDir()
	s.ok("pull", "--tls-verify=false", ref)
	o := e2e.RunOpts{Timeout: pullTimeout}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{ref}, "1000 /home/ada hello /home/ada"},
		{[]string{"-u", "0", "-w", "/tmp", "-e", "GREETING=hi", ref}, "0 /tmp hi /root"},
		{[]string{ref, `echo override $(id -un)`}, "override ada"},
		{[]string{"--entrypoint", "/bin/whoami", ref}, "ada"},
		{[]string{"--read-only", ref, "touch /home/ada/x 2>&1 | grep -c Read-only"}, "1"},
		// Volumes and tmpfs as in host-tool mode, on a read-only root.
		{[]string{"-u", "0", "--read-only", "--tmpfs", "/scratch", "-v", vol + ":/data", ref,
			"echo hi > /scratch/f && echo w > /data/out && echo $(cat /scratch/f) $(cat /data/out)"}, "hi w"},
	} {
		r := e2e.RunSandbox(t, o, s.runArgs(append([]string{"--rm"}, tc.args...)...)...)
		e2e.WantExit(t, r, 0)
		if got := strings.TrimSpace(r.Stdout); got != tc.want {
			t.Errorf("run %q: %q, want %q\n%s", tc.args, got, tc.want, r)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "out"), &st); err != nil || int(st.Uid) != os.Getuid() {
		t.Errorf("a file root of the container wrote in a volume: %v, owner %d, want %d (you)", err, st.Uid, os.Getuid())
	}
}

// A bare word is an image only when the store has one by that name;
// after "--" it is always a host command.
func TestRunImageOrHostCommand(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	s.ok("pull", "--tls-verify=false", ref)
	o := e2e.RunOpts{Timeout: pullTimeout}
	r := e2e.RunSandbox(t, o, s.runArgs("--rm", "busybox", "cat", "/etc/hostname")...)
	e2e.WantExit(t, r, 0)
	host, _ := os.ReadFile("/etc/hostname")
	if strings.TrimSpace(r.Stdout) == strings.TrimSpace(string(host)) {
		t.Errorf("'busybox' ran the host's busybox, not the image:\n%s", r)
	}
	r = e2e.RunSandbox(t, o, s.runArgs("--", "cat", "/etc/hostname")...)
	e2e.WantExit(t, r, 0)
	if strings.TrimSpace(r.Stdout) != strings.TrimSpace(string(host)) {
		t.Errorf("after -- a host command reads the host's /etc: %q\n%s", r.Stdout, r)
	}
	if n := s.containers(); n != 0 {
		t.Errorf("%d containers left", n)
	}
}

// Ten runs at once of an image not yet pulled: each pulls as needed, all
// succeed, and the store ends with one copy of each layer and no
// container left.
func TestConcurrentRunsOfUnpulledImage(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	layers := append([]testimage.Layer{busyboxLayer(t)}, testimage.MultiLayerLayers()...)
	ref := pushLayout(t, reg, testimage.Build(t, "multi", testimage.BusyboxConfig(), layers...), "multi", "test/multi:1")
	const n = 10
	results := make([]e2e.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e2e.RunProg(e2e.RunOpts{Dir: t.TempDir(), Timeout: pullTimeout}, e2e.Bin,
				s.runArgs("--rm", "--tls-verify=false", ref, "sh", "-c", fmt.Sprintf("echo run-%d", i))...)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i].Code != 0 || strings.TrimSpace(results[i].Stdout) != fmt.Sprintf("run-%d", i) {
			t.Errorf("run %d: %v\n%s", i, errs[i], results[i])
		}
	}
	if imgs := s.images(); len(imgs) != 1 {
		t.Errorf("images %+v, want one", imgs)
	}
	seen := map[string]int{}
	for _, l := range s.layers() {
		seen[l.UncompressedDigest]++
	}
	if len(seen) != len(layers) || len(s.layers()) != len(layers) {
		t.Errorf("store holds %d layers %v, want one each of %d", len(s.layers()), seen, len(layers))
	}
	if c := s.containers(); c != 0 {
		t.Errorf("%d containers left after --rm runs", c)
	}
	s.wantNoTemp("after concurrent runs")
}

// A --rm run of an image in the store starts no store helper and makes
// no storage container: it reads the store's files and uses a throwaway
// layer. While it runs, rmi refuses to take the layers from under it;
// once it ended, rmi works.
func TestRunImageFromStoreFiles(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	s.ok("pull", "--tls-verify=false", ref)
	o := e2e.RunOpts{Timeout: pullTimeout}

	r := e2e.RunSandbox(t, o, s.runArgs("--rm", "--debug", ref, "sh", "-c", "echo x > /f; cat /f; id -u")...)
	e2e.WantExit(t, r, 0)
	if !strings.Contains(r.Stderr, `from="store files"`) || strings.Contains(r.Stderr, "store helper started") {
		t.Errorf("a --rm run of a stored image used the store helper:\n%s", r.Stderr)
	}
	if got := e2e.Lines(r.Stdout); len(got) != 2 || got[0] != "x" || got[1] != "0" {
		t.Errorf("output:\n%s", r)
	}

	// The long run says it started through a volume; by then it holds
	// the image's run lock.
	mark := t.TempDir()
	long, stderr := startSandbox(t, s.runArgs("--rm", "-v", mark+":/mark", ref, "sh", "-c", "touch /mark/started; sleep 3")...)
	waitFile(t, filepath.Join(mark, "started"))
	if n := s.containers(); n != 0 {
		t.Errorf("a --rm run made %d storage containers", n)
	}
	r = s.run("rmi", ref)
	e2e.WantSandboxError(t, r, "running sandbox")
	if err := long.Wait(); err != nil {
		t.Fatalf("the long run: %v\n%s", err, stderr)
	}
	s.ok("rmi", ref)
	if imgs := s.images(); len(imgs) != 0 {
		t.Errorf("after rmi: %+v", imgs)
	}
}

// The store's place can come from ~/.config/sandbox/images.toml: pull,
// images and run use it without --root.
func TestStoreFromConfigFile(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	cfg := t.TempDir()
	os.MkdirAll(filepath.Join(cfg, "sandbox"), 0o700)
	body := fmt.Sprintf("root = %q\nrunroot = %q\n", s.root, s.runRoot)
	if err := os.WriteFile(filepath.Join(cfg, "sandbox", "images.toml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	o := e2e.RunOpts{Timeout: pullTimeout, Env: e2e.EnvWith("XDG_CONFIG_HOME=" + cfg)}
	r := e2e.RunSandbox(t, o, "pull", "-q", "--tls-verify=false", ref)
	e2e.WantExit(t, r, 0)
	if imgs := s.images(); len(imgs) != 1 {
		t.Fatalf("the pull did not land in the configured store: %+v\n%s", imgs, r)
	}
	r = e2e.RunSandbox(t, o, "run", "--rm", ref, "cat", "/etc/hostname")
	e2e.WantExit(t, r, 0)
	if strings.TrimSpace(r.Stdout) == "" {
		t.Errorf("run from the configured store printed nothing:\n%s", r)
	}
	// overlay = "fuse" makes fuse-overlayfs the default: info says so and
	// a run without --overlay gets it; --overlay still wins.
	{
		e2e.RequireTool(t, "fuse-overlayfs")
		body += "overlay = \"fuse\"\n"
		if err := os.WriteFile(filepath.Join(cfg, "sandbox", "images.toml"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r = e2e.RunSandbox(t, o, "info", "--format", "json")
		var info struct {
			Rootfs struct{ Images, Reason string }
		}
		if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil || info.Rootfs.Images != "fuse-overlayfs" || !strings.Contains(info.Rootfs.Reason, "images.toml") {
			t.Errorf("info with overlay = \"fuse\": %+v (%v)\n%s", info.Rootfs, err, r)
		}
		for flag, want := range map[string]string{"": "fuse", "--overlay=kernel": "overlay"} {
			args := []string{"run", "--rm"}
			if flag != "" {
				args = append(args, flag)
			}
			r = e2e.RunSandbox(t, o, append(args, ref, "sh", "-c", rootFSType)...)
			if e2e.WantExit(t, r, 0); strings.TrimSpace(r.Stdout) != want {
				t.Errorf("overlay = \"fuse\" in images.toml, run %q: root is %q, want %q", flag, strings.TrimSpace(r.Stdout), want)
			}
		}
		noDaemonsLeft(t, s)
	}
	os.WriteFile(filepath.Join(cfg, "sandbox", "images.toml"), []byte("root = \"relative\"\n"), 0o600)
	r = e2e.RunSandbox(t, o, "images")
	e2e.WantSandboxError(t, r, "want an absolute path")
	os.WriteFile(filepath.Join(cfg, "sandbox", "images.toml"), []byte("overlay = \"btrfs\"\n"), 0o600)
	r = e2e.RunSandbox(t, o, "run", "--rm", ref, "true")
	e2e.WantSandboxError(t, r, "btrfs", "want kernel, fuse or auto")
}

// waitFile waits (bounded) until p exists: a run inside says it got there
// through a volume.
func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill -9 of the CLI of a fuse-overlayfs run takes the daemon and the
// command with it, and leaves no mount of the container's layers in any
// mount table the user can see.
func TestFuseRootKillDashNine(t *testing.T) {
	e2e.RequireTool(t, "fuse-overlayfs")
	s, ref := fuseStoreWithBusybox(t)
	mark := t.TempDir()
	cmd := exec.Command(e2e.Bin, s.runArgs("--rm", "-v", mark+":/mark", ref, "sh", "-c", "touch /mark/started; exec sleep 31.338")...)
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFile(t, filepath.Join(mark, "started"))
	if d := fuseDaemons(s); len(d) != 1 {
		t.Fatalf("fuse-overlayfs daemons of the run: %v, want one", d)
	}
	sleeper := findProcess("sleep\x0031.338")
	if sleeper == 0 {
		t.Fatal("the sandbox's sleep is not running")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	noDaemonsLeft(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for findProcess("sleep\x0031.338") != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if findProcess("sleep\x0031.338") != 0 {
		t.Errorf("the sandbox's command outlived the killed CLI")
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err == nil && strings.Contains(string(b), s.root) {
			t.Errorf("process %s still sees a mount under the store: %s", e.Name(), s.root)
		}
	}
	// The killed run's scratch layer stays until the next run with one
	// finds it unlocked and removes it, written by ids of the sandbox
	// as it is.
	if n := len(scratchDirs(t, s.root)); n != 1 {
		t.Errorf("after the kill: %d scratch layers, want the killed run's", n)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Timeout: pullTimeout}, s.runArgs("--rm", ref, "true")...)
	e2e.WantExit(t, r, 0)
	if d := scratchDirs(t, s.root); len(d) != 0 {
		t.Errorf("the next run left scratch layers: %v", d)
	}
}

// scratchDirs lists the scratch layers of fuse-overlayfs runs under
// root.
func scratchDirs(t *testing.T, root string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(root, "sandbox-scratch", "run-*"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, p := range all {
		if !strings.HasSuffix(p, ".lock") {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// --rootfs with fuse-overlayfs: the writes, by root and by another id
// inside, go to a scratch layer on the host that is gone after the run,
// and the root directory never changes.
func TestFuseRootfs(t *testing.T) {
	e2e.RequireTool(t, "fuse-overlayfs")
	root := e2e.BusyboxRoot(t)
	s := newStore(t)
	s.overlay = "fuse"
	r := e2e.RunSandbox(t, e2e.RunOpts{}, s.runArgs("--rootfs", root, "-u", "1000", "sh", "-c",
		`mkdir /tmp/d && echo hi > /tmp/d/f && stat -c '%u %n' /tmp/d/f; `+rootFSType)...)
	e2e.WantExit(t, r, 0)
	if got := e2e.Lines(r.Stdout); len(got) != 2 || got[0] != "1000 /tmp/d/f" || got[1] != "fuse" {
		t.Errorf("--rootfs --overlay=fuse -u 1000:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "d")); !os.IsNotExist(err) {
		t.Errorf("the run wrote into the root directory: %v", err)
	}
	if d := scratchDirs(t, s.root); len(d) != 0 {
		t.Errorf("scratch layers left after the run: %v", d)
	}
	noDaemonsLeft(t, s)
}

// fuseStoreWithBusybox is a store of t's whose runs use fuse-overlayfs,
// with a busybox image pulled into it from a registry of t's.
func fuseStoreWithBusybox(t *testing.T) (*store, string) {
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	s := newStore(t)
	s.overlay = "fuse"
	s.ok("pull", "--tls-verify=false", ref)
	return s, ref
}

// findProcess returns the pid of a process whose command line contains
// argv (NUL-separated), or 0.
func findProcess(argv string) int {
	if pids := processes(func(_, cmdline string) bool { return strings.Contains(cmdline, argv) }); len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// Without fuse-overlayfs, --overlay=fuse says what is missing and how to
// get it, and leaves no container.
func TestFuseRootMissingDaemon(t *testing.T) {
	s, ref := fuseStoreWithBusybox(t)
	// A PATH with what a run needs but fuse-overlayfs.
	bin := t.TempDir()
	for _, tool := range []string{"newuidmap", "newgidmap", "nsenter"} {
		p := e2e.RequireTool(t, tool)
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Timeout: pullTimeout, Env: e2e.EnvWith("PATH=" + bin)}, s.runArgs("--rm", ref, "true")...)
	e2e.WantSandboxError(t, r, "fuse-overlayfs not found", "apt-get install fuse-overlayfs", "--overlay=kernel")
	if n := s.containers(); n != 0 {
		t.Errorf("the failed run left %d containers", n)
	}
}

// When the kernel refuses the overlay, auto serves the root with
// fuse-overlayfs: for --rm by running again with a scratch layer, for a
// kept container from the init itself; --overlay=kernel fails saying what
// to do. The refusal is real: the store is two overlays deep (mounted in
// a user and mount namespace of the test's, with unshare), past the
// kernel's stacking limit for the container's overlay. newuidmap does not
// work there, so the runs map only the caller.
func TestOverlayAutoFallsBack(t *testing.T) {
	unshare := e2e.RequireTool(t, "unshare")
	e2e.RequireTool(t, "fuse-overlayfs")
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	script := `set -u
D=$1 S=$2 REF=$3 CHECK=$4
mkdir -p $D/l1 $D/u1 $D/w1 $D/m1 $D/u2 $D/w2 $D/m2 $D/run
mount -t overlay -o lowerdir=$D/l1,upperdir=$D/u1,workdir=$D/w1,userxattr none $D/m1 || exit 99
mkdir $D/m1/base
mount -t overlay -o lowerdir=$D/m1/base,upperdir=$D/u2,workdir=$D/w2,userxattr none $D/m2 || exit 99
st="--root $D/m2/root --runroot $D/run"
$S pull -q --tls-verify=false $st $REF >/dev/null || exit 98
echo "rm: $($S run --rm $st $REF sh -c "$CHECK")"
echo "name: $($S run --name kept $st $REF sh -c "$CHECK")"
$S run --overlay=kernel --rm $st $REF true 2>&1
echo "kernel: $?"`
	dir := t.TempDir()
	// Run before TempDir's removal: with only the caller mapped every
	// file is ours, but the layers' read-only directories and overlayfs's
	// work directories (mode 0) need their write bit back.
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	r := e2e.RunBounded(t, e2e.RunOpts{Timeout: pullTimeout}, unshare, "-Urm", "sh", "-c", script, "sh",
		dir, e2e.Bin, ref, rootFSType)
	switch r.Code {
	case 99:
		t.Fatalf("cannot stack overlays in a user namespace here:\n%s", r)
	case 98:
		t.Fatalf("pull into the stacked store failed:\n%s", r)
	}
	out := r.Stdout + r.Stderr
	for _, want := range []string{"rm: fuse\n", "name: fuse\n", "kernel: 125\n", "the kernel refused the image's overlay root", "--overlay=fuse"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the output:\n%s", want, out)
		}
	}
}

// A --rm run that must keep a storage container (here: it is named) and
// is killed with -9 leaves the container only until the next run that
// prepares one, which finds its lock free and removes it.
func TestKilledRmRunsContainerRemovedLater(t *testing.T) {
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	s := newStore(t)
	s.ok("pull", "--tls-verify=false", ref)
	mark := t.TempDir()
	cmd := exec.Command(e2e.Bin, s.runArgs("--rm", "--name", "doomed", "-v", mark+":/mark", ref, "sh", "-c", "touch /mark/started; exec sleep 31.339")...)
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFile(t, filepath.Join(mark, "started"))
	// A run alongside does not take the live run's container.
	r := e2e.RunSandbox(t, e2e.RunOpts{Timeout: pullTimeout}, s.runArgs("--rm", "--name", "alongside", ref, "true")...)
	e2e.WantExit(t, r, 0)
	if n := s.containers(); n != 1 {
		t.Fatalf("while the --rm run lives: %d containers, want its one", n)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for findProcess("sleep\x0031.339") != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.containers(); n != 1 {
		t.Fatalf("after the kill: %d containers, want the killed run's", n)
	}
	r = e2e.RunSandbox(t, e2e.RunOpts{Timeout: pullTimeout}, s.runArgs("--rm", "--name", "next", ref, "true")...)
	e2e.WantExit(t, r, 0)
	if n := s.containers(); n != 0 {
		t.Errorf("the next run left %d containers, want the killed run's removed", n)
	}
	if locks, _ := filepath.Glob(filepath.Join(s.root, "sandbox-runs", "rm-*.lock")); len(locks) != 0 {
		t.Errorf("run locks left: %v", locks)
	}
}
