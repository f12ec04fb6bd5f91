package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sandbox/idmap"
	"sandbox/internal/e2e"
	"sandbox/internal/registry"
	"sandbox/internal/testimage"
	"sandbox/storeclient"
)

// nshelper runs what must happen inside the store's user namespace: an
// overlay mount of a prepared image, removing a store's files.
var nshelper = &e2e.Helper{Dir: "testdata/nshelper"}

// buildTags is the file with the build tags of sandbox-store.
const buildTags = "../../hack/build-tags"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if bin := os.Getenv("SANDBOX_BIN"); bin != "" {
		// The CLI finds the helper next to itself, as it is installed.
		if _, err := os.Stat(filepath.Join(filepath.Dir(bin), storeclient.HelperName)); err != nil {
			fmt.Fprintf(os.Stderr, "image: SANDBOX_BIN=%s has no %s beside it: %v\n", bin, storeclient.HelperName, err)
			return 1
		}
	} else {
		dir, err := os.MkdirTemp("", "sandbox-imgbin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		tags, err := os.ReadFile(buildTags)
		if err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
			return 1
		}
		storeTags := strings.TrimSpace(string(tags))
		for _, b := range []struct{ pkg, out, tags string }{
			{"../../cmd/sandbox", "sandbox", ""},
			{"../../cmd/sandbox-store", storeclient.HelperName, storeTags},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			cmd := exec.CommandContext(ctx, "go", "build", "-tags", b.tags, "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "image: building %s (set SANDBOX_BIN to use a built one): %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		os.Setenv("SANDBOX_BIN", filepath.Join(dir, "sandbox"))
	}
	return e2e.Main(m, "image", "sandbox-imgtest-", nshelper)
}

// pullTimeout bounds one image command: pulls of the test images take
// well under a second here; a loaded CI machine gets room, a hang does not.
const pullTimeout = 2 * time.Minute

// store is an image store of the test's own, under its temp dir.
type store struct {
	t             *testing.T
	root, runRoot string
	// overlay, when set, is passed to run as --overlay.
	overlay string
}

// newStore makes an empty store for t and removes it at the end through
// the store's user namespace (its files belong to subordinate ids, which
// the test user cannot delete from the host).
func newStore(t *testing.T) *store {
	t.Helper()
	requireFullMap(t)
	dir := t.TempDir()
	s := &store{t: t, root: filepath.Join(dir, "root"), runRoot: filepath.Join(dir, "run")}
	t.Cleanup(func() {
		if _, err := nsRun(t, s, nil, "rmtree", dir); err != nil {
			t.Errorf("removing the store: %v", err)
		}
	})
	return s
}

// run runs `sandbox ARGS --root R --runroot RR`.
func (s *store) run(args ...string) e2e.Result {
	s.t.Helper()
	return e2e.RunSandbox(s.t, e2e.RunOpts{Timeout: pullTimeout}, s.args(args...)...)
}

func (s *store) args(args ...string) []string {
	return append(append([]string(nil), args...), "--root", s.root, "--runroot", s.runRoot)
}

// ok runs args and fails the test unless it exits 0.
func (s *store) ok(args ...string) e2e.Result {
	s.t.Helper()
	r := s.run(args...)
	if r.Code != 0 {
		s.t.Fatalf("sandbox %s: want exit 0\n%s", strings.Join(args, " "), r)
	}
	return r
}

// summary is one image of `sandbox images --format json`.
type summary struct {
	ID     string   `json:"id"`
	Names  []string `json:"names"`
	Digest string   `json:"digest"`
	Size   int64    `json:"size"`
}

func (s *store) images() []summary {
	s.t.Helper()
	r := s.ok("images", "--format", "json")
	var out []summary
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		s.t.Fatalf("images --format json: %v\n%s", err, r)
	}
	return out
}

// layerRecord is one entry of containers/storage's layers.json.
type layerRecord struct {
	ID                 string         `json:"id"`
	Parent             string         `json:"parent"`
	CompressedDigest   string         `json:"compressed-diff-digest"`
	UncompressedDigest string         `json:"diff-digest"`
	Flags              map[string]any `json:"flags"`
}

// layers reads the store's layer records from disk, as the host sees them.
func (s *store) layers() []layerRecord {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.root, "overlay-layers", "layers.json"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	var out []layerRecord
	if err := json.Unmarshal(b, &out); err != nil {
		s.t.Fatalf("layers.json: %v\n%s", err, b)
	}
	return out
}

// layerDirs lists the layer directories under overlay/ (not "l", the
// driver's short links, nor its other bookkeeping).
func (s *store) layerDirs() []string {
	s.t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.root, "overlay"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if layerID.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

var layerID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// wantEmpty checks that nothing of an image stayed in the store.
func (s *store) wantEmpty(what string) {
	s.t.Helper()
	if imgs := s.images(); len(imgs) != 0 {
		s.t.Errorf("%s: store holds images %+v, want none", what, imgs)
	}
	if ls := s.layers(); len(ls) != 0 {
		s.t.Errorf("%s: store holds layers %+v, want none", what, ls)
	}
	if ds := s.layerDirs(); len(ds) != 0 {
		s.t.Errorf("%s: store holds layer directories %v, want none", what, ds)
	}
	s.wantNoTemp(what)
}

// wantNoTemp checks that no temporary directory is left: ours (of an
// image copy) or the overlay driver's (of a layer being applied).
func (s *store) wantNoTemp(what string) {
	s.t.Helper()
	for _, dir := range []string{filepath.Join(s.root, "sandbox-tmp"), filepath.Join(s.root, "overlay", "tempdirs"), filepath.Join(s.root, "overlay", "staging")} {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			// The lock that serialises sweeping stays, as a lock does.
			if e.Name() != ".sweep.lock" {
				names = append(names, e.Name())
			}
		}
		if len(names) != 0 {
			s.t.Errorf("%s: temporary files left in %s: %v", what, dir, names)
		}
	}
}

// nsRun runs nshelper with args inside a user namespace set up exactly as
// the store helper's, through the same code (storeclient).
func nsRun(t *testing.T, s *store, out any, args ...string) (storeclient.Mapping, error) {
	t.Helper()
	if nshelper.Bin == "" {
		return storeclient.Mapping{}, fmt.Errorf("nshelper: %v", nshelper.Err)
	}
	return nsRunBin(t, s, nshelper.Bin, out, args...)
}

// nsRunBin is nsRun with another program that speaks the same contract.
func nsRunBin(t *testing.T, s *store, bin string, out any, args ...string) (storeclient.Mapping, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pullTimeout)
	defer cancel()
	uid, gid := os.Getuid(), os.Getgid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return storeclient.Run(ctx, storeclient.Config{
		Bin: bin, Root: s.root, RunRoot: s.runRoot,
		User: name, UID: uint32(uid), GID: uint32(gid), PathEnv: os.Getenv("PATH"),
	}, out, args...)
}

// subIDs are the test user's first subordinate uid and gid ranges.
type subIDs struct{ uid, gid idmap.Range }

var ids subIDs

// requireFullMap: the tests are about what an ordinary user with
// subordinate ids gets.
func requireFullMap(t *testing.T) subIDs {
	t.Helper()
	e2e.RequireUnprivileged(t)
	e2e.RequireTool(t, "newuidmap")
	e2e.RequireTool(t, "newgidmap")
	u, err := user.Current()
	e2e.RequireX(t, err == nil, "current user: %v", err)
	d := idmap.Decide(os.Getenv("PATH"), u.Username, uint32(os.Getuid()), uint32(os.Getgid()))
	e2e.RequireX(t, d.Full, "a full id map for %s: %v", u.Username, d.Reason)
	ids = subIDs{d.SubUIDs[0], d.SubGIDs[0]}
	return ids
}

// hostUID is where the store keeps container uid n on the host.
func hostUID(n int) int {
	if n == 0 {
		return os.Getuid()
	}
	return int(ids.uid.Start) + n - 1
}

func hostGID(n int) int {
	if n == 0 {
		return os.Getgid()
	}
	return int(ids.gid.Start) + n - 1
}

// skopeo runs skopeo, bounded, failing the test on error.
func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	bin := e2e.RequireTool(t, "skopeo")
	ctx, cancel := context.WithTimeout(context.Background(), pullTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--insecure-policy"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// pushLayout pushes image ref of an OCI layout to the registry as repo:tag
// and returns the reference to pull.
func pushLayout(t *testing.T, r *registry.Registry, layout, ref, repo string) string {
	t.Helper()
	dest := r.Addr + "/" + repo
	skopeo(t, "copy", "--dest-tls-verify=false", "oci:"+layout+":"+ref, "docker://"+dest)
	return dest
}

// layoutOf builds an OCI layout of layers with a plain config.
func layoutOf(t *testing.T, ref string, layers ...testimage.Layer) string {
	t.Helper()
	return testimage.Build(t, ref, testimage.Config{Cmd: []string{"/bin/sh"}}, layers...)
}

// startSandbox starts the binary without waiting; the test kills it.
func startSandbox(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(e2e.Bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stderr
}
