package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"sandbox/internal/e2e"
)

// Guards the PID namespace and the fresh /proc: the command sees only the
// sandbox's own processes, never the host's.
func TestPIDNamespaceShowsOnlySandbox(t *testing.T) {
	e2e.RequireUnprivileged(t)
	e2e.RequireTool(t, "ps")
	if n := len(listProcs()); n < 5 {
		t.Fatalf("host shows only %d processes; the check below could not tell", n)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "ps", "-e", "-o", "pid=,comm=")
	e2e.WantExit(t, r, 0)
	pids := map[int]string{}
	for _, l := range e2e.Lines(r.Stdout) {
		f := strings.Fields(l)
		pid, err := strconv.Atoi(f[0])
		if err != nil || len(f) < 2 {
			t.Fatalf("unexpected ps line %q\n%s", l, r)
		}
		pids[pid] = f[1]
	}
	if len(pids) < 2 || len(pids) > 3 {
		t.Errorf("want only sandbox's init and ps (maybe a wrapper) inside, got %d processes", len(pids))
	}
	if _, ok := pids[1]; !ok {
		t.Errorf("want a PID 1 inside the sandbox")
	}
	if pids[1] == "ps" {
		t.Errorf("PID 1 is the command itself; want sandbox's own init as PID 1")
	}
	sawPS := false
	for pid, comm := range pids {
		sawPS = sawPS || comm == "ps"
		if pid > 50 {
			t.Errorf("pid %d inside: looks like a host pid", pid)
		}
	}
	if !sawPS {
		t.Errorf("ps does not see itself")
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards the UTS namespace: inside is "sandbox" or --hostname, the host's
// name never changes.
func TestHostnameIsPrivate(t *testing.T) {
	e2e.RequireUnprivileged(t)
	before, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "cat", "/proc/sys/kernel/hostname")
	e2e.WantExit(t, r, 0)
	if got := strings.TrimSpace(r.Stdout); got != "sandbox" {
		t.Errorf("default hostname inside = %q, want %q", got, "sandbox")
	}
	r = e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--hostname", "itest-foo", "--", "cat", "/proc/sys/kernel/hostname")
	e2e.WantExit(t, r, 0)
	if got := strings.TrimSpace(r.Stdout); got != "itest-foo" {
		t.Errorf("--hostname itest-foo: hostname inside = %q", got)
	}
	if after, _ := os.Hostname(); after != before {
		t.Errorf("host hostname changed from %q to %q", before, after)
	}
}

// Guards the read-only system directories: the user cannot change the
// host's /usr or /etc from inside, and the reason is the read-only mount,
// not only file permissions.
func TestSystemDirsReadOnly(t *testing.T) {
	e2e.RequireUnprivileged(t)
	for _, dir := range []string{"/usr", "/usr/bin", "/etc"} {
		t.Run(strings.TrimPrefix(dir, "/"), func(t *testing.T) {
			target := filepath.Join(dir, fmt.Sprintf("itest-ro-%d", os.Getpid()))
			r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "touch", target)
			if r.Code == 0 {
				os.Remove(target)
				t.Fatalf("touch %s succeeded inside the sandbox\n%s", target, r)
			}
			if !strings.Contains(r.Stderr, "Read-only file system") {
				t.Errorf("want touch to fail with EROFS (read-only bind), got:\n%s", r)
			}
			if _, err := os.Lstat(target); err == nil {
				t.Errorf("%s appeared on the host", target)
			}
		})
	}
}

// Guards the hidden $HOME: a private key in the caller's home is neither
// visible nor readable from a workdir below that home.
func TestHomeIsHidden(t *testing.T) {
	e2e.RequireUnprivileged(t)
	home := t.TempDir()
	secret := fmt.Sprintf("itest-secret-key-%d", os.Getpid())
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "id_rsa"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".bashrc"), []byte("# "+secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wd := filepath.Join(home, "project")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd, Env: e2e.EnvWith("HOME=" + home)}, "run", "--", "sh", "-c",
		`echo "HOME=$HOME"; echo "PWD=$(pwd)"; ls -A "$HOME"; cat "$HOME/.ssh/id_rsa" "$HOME/.bashrc"; test -e "$HOME/.ssh" && echo SSH-VISIBLE; exit 0`)
	e2e.WantExit(t, r, 0)
	if strings.Contains(r.Stdout, secret) {
		t.Errorf("the secret in $HOME is readable inside")
	}
	if strings.Contains(r.Stdout, "SSH-VISIBLE") {
		t.Errorf("$HOME/.ssh exists inside")
	}
	ls := e2e.Lines(r.Stdout)
	if !slices.Contains(ls, "HOME="+home) {
		t.Errorf("want HOME=%s inside", home)
	}
	if !slices.Contains(ls, "PWD="+wd) {
		t.Errorf("want the workdir %s as the current directory", wd)
	}
	for _, l := range ls {
		if l == ".ssh" || l == ".bashrc" {
			t.Errorf("ls $HOME inside lists %q; want only the path to the workdir", l)
		}
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards the read-write workdir and the keep-id mapping seen from the
// host: a file written inside appears on the host, owned by the caller.
func TestWorkdirWritableOwnedByCaller(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--", "sh", "-c", `echo hello > out.txt && id -u && id -g && pwd`)
	e2e.WantExit(t, r, 0)
	want := []string{strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid()), wd}
	if got := e2e.Lines(r.Stdout); !slices.Equal(got, want) {
		t.Errorf("inside: id -u, id -g, pwd = %q, want %q", got, want)
	}
	st, err := os.Stat(filepath.Join(wd, "out.txt"))
	if err != nil {
		t.Fatalf("file written inside is not on the host: %v\n%s", err, r)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid() {
		t.Errorf("out.txt is owned by %d:%d on the host, want %d:%d", sys.Uid, sys.Gid, os.Getuid(), os.Getgid())
	}
	if b, _ := os.ReadFile(filepath.Join(wd, "out.txt")); string(b) != "hello\n" {
		t.Errorf("out.txt on the host = %q", b)
	}
}

// Guards the private /tmp: host files in /tmp are not visible, files
// written to /tmp inside never reach the host.
func TestTmpIsPrivate(t *testing.T) {
	e2e.RequireUnprivileged(t)
	hostMarker, err := os.CreateTemp("", "itest-host-marker-")
	if err != nil {
		t.Fatal(err)
	}
	hostMarker.Close()
	t.Cleanup(func() { os.Remove(hostMarker.Name()) })
	if filepath.Dir(hostMarker.Name()) != "/tmp" {
		t.Logf("TMPDIR is %s, not /tmp: the host marker checks that directory", filepath.Dir(hostMarker.Name()))
	}
	inside := fmt.Sprintf("itest-inside-%d", os.Getpid())
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "sh", "-c",
		fmt.Sprintf(`test -e %s && echo HOST-MARKER-VISIBLE; touch /tmp/%s && echo TMP-WRITABLE`, e2e.ShQuote(hostMarker.Name()), inside))
	e2e.WantExit(t, r, 0)
	if strings.Contains(r.Stdout, "HOST-MARKER-VISIBLE") {
		t.Errorf("host file %s is visible inside", hostMarker.Name())
	}
	if !strings.Contains(r.Stdout, "TMP-WRITABLE") {
		t.Errorf("/tmp is not writable inside")
	}
	if _, err := os.Lstat(filepath.Join("/tmp", inside)); err == nil {
		os.Remove(filepath.Join("/tmp", inside))
		t.Errorf("/tmp/%s written inside appeared on the host", inside)
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards the minimal /dev: the listed devices work, host devices (disks,
// kmsg, mem) are absent.
func TestDevIsMinimal(t *testing.T) {
	e2e.RequireUnprivileged(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "sh", "-c",
		`ls -A /dev; echo --; echo x > /dev/null && head -c 4 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c`)
	e2e.WantExit(t, r, 0)
	parts := strings.SplitN(r.Stdout, "--\n", 2)
	if len(parts) != 2 {
		t.Fatalf("unexpected output\n%s", r)
	}
	got := e2e.Lines(parts[0])
	required := []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"}
	for _, d := range required {
		if !slices.Contains(got, d) {
			t.Errorf("/dev/%s missing inside", d)
		}
	}
	allowed := append(required, "fd", "stdin", "stdout", "stderr", "core", "console", "mqueue")
	for _, d := range got {
		if !slices.Contains(allowed, d) {
			t.Errorf("/dev/%s present inside; want only %v", d, allowed)
		}
	}
	if io := e2e.Lines(parts[1]); !slices.Equal(io, []string{"4", "3"}) {
		t.Errorf("reading /dev/urandom and /dev/zero inside gave %q", io)
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards the network namespace: only loopback inside.
func TestNetworkLoopbackOnly(t *testing.T) {
	e2e.RequireUnprivileged(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "cat", "/proc/net/dev")
	e2e.WantExit(t, r, 0)
	ifaces := netDevNames(r.Stdout)
	if !slices.Equal(ifaces, []string{"lo"}) {
		t.Errorf("interfaces inside = %q, want only lo\n%s", ifaces, r)
	}
	if host, err := os.ReadFile("/proc/net/dev"); err == nil && len(netDevNames(string(host))) < 2 {
		t.Logf("the host itself has only loopback; the check above is weaker here")
	}
}

func netDevNames(s string) []string {
	var out []string
	for _, l := range e2e.Lines(s) {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			out = append(out, strings.TrimSpace(name))
		}
	}
	return out
}

// Guards the clean environment: host secrets stay out, the listed
// variables pass, -e and --env-file add.
func TestEnvIsClean(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	envFile := filepath.Join(wd, "vars.env")
	if err := os.WriteFile(envFile, []byte("FROMFILE=one\nFROMFILE2=two words\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostEnv := e2e.EnvWith("MY_TOKEN=itest-secret-token", "PASSME=from-host", "TERM=xterm-itest",
		"LANG=C.UTF-8", "LC_TIME=C", "TZ=UTC", "SSH_AUTH_SOCK=/tmp/itest-agent.sock", "DBUS_SESSION_BUS_ADDRESS=unix:path=/x")
	r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd, Env: hostEnv}, "run", "-e", "FOO=bar", "--env", "PASSME", "--env-file", envFile, "--", "/usr/bin/env")
	e2e.WantExit(t, r, 0)
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	want := map[string]string{
		"FOO": "bar", "PASSME": "from-host", "FROMFILE": "one", "FROMFILE2": "two words",
		"TERM": "xterm-itest", "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC",
		"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("inside %s=%q, want %q", k, got[k], v)
		}
	}
	allowed := []string{"PATH", "HOME", "USER", "LOGNAME", "TERM", "LANG", "TZ", "FOO", "PASSME", "FROMFILE", "FROMFILE2"}
	for k := range got {
		// PWD naming the working directory tells nothing about the host.
		if k == "PWD" && got[k] == wd {
			continue
		}
		if !slices.Contains(allowed, k) && !strings.HasPrefix(k, "LC_") {
			t.Errorf("%s=%q leaked into the sandbox", k, got[k])
		}
	}
	if strings.Contains(r.Stdout, "itest-secret-token") {
		t.Errorf("the host secret MY_TOKEN is visible inside")
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards -v (read-write and :ro), --tmpfs and -w: what a user binds is
// there, writes reach the host only where allowed.
func TestVolumesTmpfsWorkdir(t *testing.T) {
	e2e.RequireUnprivileged(t)
	data, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "in.txt"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run",
		"-v", data+":/data", "--volume", ro+":/ro:ro", "--tmpfs", "/scratch", "-w", "/data", "--",
		"sh", "-c", `cat in.txt; pwd; echo new > /data/new.txt; echo s > /scratch/s && cat /scratch/s; grep " /scratch " /proc/self/mountinfo; touch /ro/x || echo RO-REFUSED`)
	if !strings.Contains(r.Stderr, "Read-only file system") {
		t.Errorf("touch on a :ro volume should fail with EROFS")
	}
	e2e.WantExit(t, r, 0)
	out := e2e.Lines(r.Stdout)
	if len(out) < 5 {
		t.Fatalf("unexpected output\n%s", r)
	}
	if out[0] != "from-host" {
		t.Errorf("-v %s:/data: cat in.txt = %q", data, out[0])
	}
	if out[1] != "/data" {
		t.Errorf("-w /data: pwd = %q", out[1])
	}
	if out[2] != "s" {
		t.Errorf("--tmpfs /scratch not writable: %q", out[2])
	}
	if !strings.Contains(out[3], " - tmpfs ") {
		t.Errorf("/scratch is not a tmpfs mount: %q", out[3])
	}
	if out[len(out)-1] != "RO-REFUSED" {
		t.Errorf("writing into a :ro volume succeeded")
	}
	if b, err := os.ReadFile(filepath.Join(data, "new.txt")); err != nil || string(b) != "new\n" {
		t.Errorf("write to a read-write volume did not reach the host: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(ro, "x")); err == nil {
		t.Errorf("write to a :ro volume reached the host")
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards -i: the command reads the caller's stdin only when asked to;
// otherwise its stdin is /dev/null.
func TestStdinOnlyWithInteractive(t *testing.T) {
	e2e.RequireUnprivileged(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{Stdin: strings.NewReader("typed-line\n")}, "run", "-i", "--", "cat")
	e2e.WantExit(t, r, 0)
	if r.Stdout != "typed-line\n" {
		t.Errorf("-i: cat read %q, want the caller's input\n%s", r.Stdout, r)
	}
	r = e2e.RunSandbox(t, e2e.RunOpts{Stdin: strings.NewReader("typed-line\n")}, "run", "--", "sh", "-c", `cat; readlink /proc/self/fd/0`)
	e2e.WantExit(t, r, 0)
	if got := e2e.Lines(r.Stdout); !slices.Equal(got, []string{"/dev/null"}) {
		t.Errorf("without -i: want no input and stdin /dev/null, got %q\n%s", got, r)
	}
}

// Guards fd hygiene: a host fd inherited by the CLI (fd 3, not
// close-on-exec) must not reach the command; only 0-2 do.
func TestOnlyStdioFdsReachCommand(t *testing.T) {
	e2e.RequireUnprivileged(t)
	leak, err := os.Create(filepath.Join(t.TempDir(), "itest-leaked-fd"))
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()

	// Control: a plain exec does pass fd 3 on, so the check can fail.
	ctl := e2e.RunBounded(t, e2e.RunOpts{Extra: []*os.File{leak}}, "/bin/ls", "-l", "/proc/self/fd")
	if !strings.Contains(ctl.Stdout, "itest-leaked-fd") {
		t.Fatalf("control: the extra fd did not reach a plain child\n%s", ctl)
	}

	r := e2e.RunSandbox(t, e2e.RunOpts{Extra: []*os.File{leak}}, "run", "--", "ls", "-l", "/proc/self/fd")
	e2e.WantExit(t, r, 0)
	fds := map[string]string{}
	for _, l := range e2e.Lines(r.Stdout) {
		if !strings.Contains(l, " -> ") {
			continue
		}
		f := strings.Fields(l)
		for i, w := range f {
			if w == "->" && i > 0 && i+1 < len(f) {
				fds[f[i-1]] = strings.Join(f[i+1:], " ")
			}
		}
	}
	for _, fd := range []string{"0", "1", "2"} {
		if _, ok := fds[fd]; !ok {
			t.Errorf("fd %s missing inside", fd)
		}
	}
	for fd, target := range fds {
		if fd == "0" || fd == "1" || fd == "2" {
			continue
		}
		// ls's own directory fd is the only other one allowed.
		if !(strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd")) {
			t.Errorf("fd %s -> %s reached the command", fd, target)
		}
	}
	if strings.Contains(r.Stdout, "itest-leaked-fd") {
		t.Errorf("the host file behind fd 3 is open inside")
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}
