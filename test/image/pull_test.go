package image

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/e2e"
	"sandbox/internal/registry"
	"sandbox/internal/testimage"
)

// Guards the basic pull: a shell image pushed by skopeo to a real
// registry comes back through `sandbox pull` over plain HTTP, and
// `sandbox images` lists it, as a table and as JSON.
func TestPullBusybox(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)

	start := time.Now()
	r := s.ok("pull", "--tls-verify=false", ref)
	t.Logf("sandbox pull %s: %v", ref, time.Since(start))
	id := strings.TrimSpace(r.Stdout)
	if len(id) != 64 {
		t.Fatalf("pull printed %q, want the image id\n%s", r.Stdout, r)
	}
	if strings.Contains(r.Stderr, "notice") {
		t.Errorf("an ordinary image drew notices:\n%s", r.Stderr)
	}

	imgs := s.images()
	if len(imgs) != 1 || imgs[0].ID != id || len(imgs[0].Names) != 1 || imgs[0].Names[0] != ref || imgs[0].Size <= 0 {
		t.Fatalf("images --format json = %+v, want one image %s named %s", imgs, id, ref)
	}
	table := s.ok("images")
	lines := e2e.Lines(table.Stdout)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "REPOSITORY") {
		t.Fatalf("images table:\n%s", table.Stdout)
	}
	f := strings.Fields(lines[1])
	if f[0] != reg.Addr+"/test/busybox" || f[1] != "latest" || f[2] != id[:12] {
		t.Errorf("images table row %q, want %s/test/busybox latest %s ...", lines[1], reg.Addr, id[:12])
	}

	// A second pull finds everything in place.
	r = s.ok("pull", "--tls-verify=false", ref)
	if strings.TrimSpace(r.Stdout) != id {
		t.Errorf("second pull printed %q, want %s", r.Stdout, id)
	}
	if n := len(s.layers()); n != 1 {
		t.Errorf("after two pulls: %d layers, want 1", n)
	}
	s.wantNoTemp("after pulls")

	// The layer dir is owned by container root, i.e. the caller.
	for _, l := range s.layers() {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(s.root, "overlay", l.ID, "diff", "bin", "busybox"), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != os.Getuid() || st.Mode&0o777 != 0o755 {
			t.Errorf("bin/busybox on disk: uid %d mode %o, want uid %d (container root) 0755", st.Uid, st.Mode&0o7777, os.Getuid())
		}
	}
}

// Guards the TLS default: a plain-HTTP registry is refused unless the
// user says --tls-verify=false, and the message says so.
func TestPullNeedsTLSByDefault(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	ref := pushLayout(t, reg, layoutOf(t, "one", testimage.Layer{{Kind: testimage.File, Path: "f", Data: []byte("f\n"), Mode: 0o644}}), "one", "test/one:1")
	r := s.run("pull", ref)
	e2e.WantSandboxError(t, r, "cannot pull", "--tls-verify=false")
	s.wantEmpty("refused pull")
}

// Guards "a malformed reference fails before any network access": the
// port below listens nowhere, so any attempt to connect would be a
// connection error; the malformed one must fail on parsing instead, and
// the well-formed one on connecting, which shows the difference.
func TestMalformedReferenceFailsOffline(t *testing.T) {
	s := newStore(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, bad := range []string{
		dead + "/Upper/Case:1",
		dead + "/name:bad:tag",
		dead + "/name@sha256:nothex",
		"http://" + dead + "/name",
		dead + "/name:" + strings.Repeat("t", 200),
	} {
		r := s.run("pull", "--tls-verify=false", bad)
		e2e.WantSandboxError(t, r, "invalid image reference", "before any network access")
		if strings.Contains(r.Stderr, "connect") {
			t.Errorf("pull %s tried the network:\n%s", bad, r)
		}
	}
	r := s.run("pull", "--tls-verify=false", dead+"/name:1")
	e2e.WantSandboxError(t, r, "cannot pull", "reachable")
	s.wantEmpty("failed pulls")
}

// Guards the short-name rule: a name without a registry goes to the
// search list, here a loopback registry given with --registry, and to
// nothing else.
func TestShortNameSearchList(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	pushLayout(t, reg, layoutOf(t, "one", testimage.Layer{{Kind: testimage.File, Path: "f", Data: []byte("f\n"), Mode: 0o644}}), "one", "short:latest")
	r := s.ok("pull", "--tls-verify=false", "--registry", reg.Addr, "short")
	id := strings.TrimSpace(r.Stdout)
	imgs := s.images()
	if len(imgs) != 1 || imgs[0].Names[0] != reg.Addr+"/short:latest" {
		t.Fatalf("images %+v, want %s/short:latest", imgs, reg.Addr)
	}
	// Local lookups of the short name find it under the same list.
	s.ok("image", "inspect", id[:12])
	// An empty search list is an error that names the fix.
	cfg := filepath.Join(t.TempDir(), "sandbox")
	os.MkdirAll(cfg, 0o755)
	os.WriteFile(filepath.Join(cfg, "images.toml"), []byte("registries = []\n"), 0o644)
	r = e2e.RunSandbox(t, e2e.RunOpts{Env: e2e.EnvWith("XDG_CONFIG_HOME=" + filepath.Dir(cfg))}, s.args("pull", "short")...)
	e2e.WantSandboxError(t, r, "search list is empty")
	os.WriteFile(filepath.Join(cfg, "images.toml"), []byte("registrys = [\"x\"]\n"), 0o644)
	r = e2e.RunSandbox(t, e2e.RunOpts{Env: e2e.EnvWith("XDG_CONFIG_HOME=" + filepath.Dir(cfg))}, s.args("pull", "short")...)
	e2e.WantSandboxError(t, r, "unknown key", "registrys")
}

// Guards rmi, tag and image inspect against a pulled image.
func TestTagInspectRmi(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	cfg := testimage.Config{Entrypoint: []string{"/bin/tool"}, Cmd: []string{"x"}, Env: []string{"PATH=/bin"}, WorkingDir: "/srv", User: "33:33"}
	layout := testimage.Build(t, "multi", cfg, testimage.MultiLayerLayers()...)
	ref := pushLayout(t, reg, layout, "multi", "test/multi:1")
	id := strings.TrimSpace(s.ok("pull", "--tls-verify=false", ref).Stdout)

	s.ok("tag", ref, "mine:v2")
	s.ok("tag", id[:12], reg.Addr+"/other/name:3")
	imgs := s.images()
	if len(imgs) != 1 || len(imgs[0].Names) != 3 {
		t.Fatalf("after two tags: %+v, want one image with three names", imgs)
	}

	var d struct {
		ID     string   `json:"id"`
		Names  []string `json:"names"`
		Layers []string `json:"layers"`
		Config struct {
			Entrypoint, Cmd, Env []string
			WorkingDir, User     string
		} `json:"config"`
	}
	r := s.ok("image", "inspect", "localhost/mine:v2")
	if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
		t.Fatalf("inspect: %v\n%s", err, r)
	}
	if d.ID != id || len(d.Layers) != 3 || d.Config.WorkingDir != "/srv" || d.Config.User != "33:33" ||
		strings.Join(d.Config.Entrypoint, " ") != "/bin/tool" || strings.Join(d.Config.Cmd, " ") != "x" {
		t.Errorf("inspect = %+v, want id %s, 3 layers and the config %+v", d, id, cfg)
	}

	// A name goes alone while others remain; the last name takes the image.
	r = s.ok("rmi", "mine:v2")
	if !strings.Contains(r.Stdout, "Untagged: localhost/mine:v2") || strings.Contains(r.Stdout, "Deleted") {
		t.Errorf("rmi of one name:\n%s", r)
	}
	r = s.run("rmi", "nosuch")
	e2e.WantSandboxError(t, r, "no image", "nosuch")
	s.ok("rmi", ref)
	r = s.ok("rmi", reg.Addr+"/other/name:3")
	if !strings.Contains(r.Stdout, "Deleted: "+id) {
		t.Errorf("rmi of the last name:\n%s", r)
	}
	s.wantEmpty("after rmi")
	r = s.run("image", "inspect", id)
	e2e.WantSandboxError(t, r, "no image")
}

// Guards login and logout against the auth file: credentials checked with
// the registry, stored, removed, and a second logout says there is
// nothing to remove.
func TestLoginLogout(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	auth := filepath.Join(t.TempDir(), "auth.json")
	r := e2e.RunSandbox(t, e2e.RunOpts{Stdin: strings.NewReader("secret\n")},
		s.args("login", "--password-stdin", "-u", "ada", "--tls-verify=false", "--authfile", auth, reg.Addr)...)
	e2e.WantExit(t, r, 0)
	var file struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	b, err := os.ReadFile(auth)
	if err != nil || json.Unmarshal(b, &file) != nil || file.Auths[reg.Addr].Auth == "" {
		t.Fatalf("auth file after login: %s (%v)", b, err)
	}
	if fi, err := os.Stat(auth); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("auth file %v: readable by others", fi.Mode())
	}
	s.ok("logout", "--authfile", auth, reg.Addr)
	b, _ = os.ReadFile(auth)
	if strings.Contains(string(b), reg.Addr) {
		t.Errorf("auth file after logout still names %s: %s", reg.Addr, b)
	}
	r = s.run("logout", "--authfile", auth, reg.Addr)
	e2e.WantSandboxError(t, r, "not logged in to "+reg.Addr)
	// Without a terminal and without --password-stdin, login says how.
	r = s.run("login", "-u", "ada", reg.Addr)
	e2e.WantSandboxError(t, r, "password-stdin")
}

// Pull, push and load show their progress on a terminal (a real pty,
// through script), and nothing of it without one or with -q.
func TestProgressOnTerminal(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	ref := pushBusybox(t, reg)
	archive := filepath.Join(t.TempDir(), "bb.tar")
	sb := e2e.ShQuote(e2e.Bin)
	store := " --root " + e2e.ShQuote(s.root) + " --runroot " + e2e.ShQuote(s.runRoot)
	cmds := []struct{ name, cmd string }{
		{"pull", sb + " pull --tls-verify=false" + store + " " + ref},
		{"push", sb + " push --tls-verify=false" + store + " " + ref + " " + reg.Addr + "/test/pushed:1"},
		{"save", sb + " save -o " + e2e.ShQuote(archive) + store + " " + ref},
		{"load", sb + " rmi" + store + " " + ref + " >/dev/null && " + sb + " load -i " + e2e.ShQuote(archive) + store},
	}
	for _, c := range cmds {
		r := e2e.PtyRun(t, t.TempDir(), "stty cols 120 rows 40; "+c.cmd, "")
		if r.Code != 0 {
			t.Fatalf("%s on a terminal:\n%s", c.name, r)
		}
		if c.name != "save" && !strings.Contains(r.Stdout, "Copying blob") {
			t.Errorf("%s on a terminal shows no progress:\n%s", c.name, r)
		}
	}
	// A terminal nobody gave a size (width 0) still shows it, a line a blob.
	s.ok("rmi", ref)
	if r := e2e.PtyRun(t, t.TempDir(), "stty cols 0 rows 0; "+sb+" pull --tls-verify=false"+store+" "+ref, ""); r.Code != 0 || !strings.Contains(r.Stdout, "Copying blob") {
		t.Errorf("pull on a terminal of width 0 shows no progress:\n%s", r)
	}
	// Quiet: -q on a terminal, and no terminal at all.
	s.ok("rmi", ref)
	r := e2e.PtyRun(t, t.TempDir(), sb+" pull -q --tls-verify=false"+store+" "+ref, "")
	if r.Code != 0 || strings.Contains(r.Stdout, "Copying") {
		t.Errorf("pull -q on a terminal:\n%s", r)
	}
	s.ok("rmi", ref)
	r = s.ok("pull", "--tls-verify=false", ref)
	if strings.Contains(r.Stderr, "Copying") || strings.Contains(r.Stdout, "Copying") {
		t.Errorf("pull without a terminal shows progress:\n%s", r)
	}
}
