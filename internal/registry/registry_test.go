package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/e2e"
	"sandbox/internal/testimage"
)

const manifestOCI = "application/vnd.oci.image.manifest.v1+json"

// client never goes through an HTTP proxy from the environment and never
// hangs a test.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}
}

// get fetches url and fails the test unless the status is want.
func get(t *testing.T, url, accept string, want int) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d\n%s", url, resp.Status, want, body)
	}
	return resp, body
}

func TestStart(t *testing.T) {
	r := Start(t)
	if host, _, err := net.SplitHostPort(r.Addr); err != nil || host != "127.0.0.1" {
		t.Errorf("Addr %q: want 127.0.0.1:PORT", r.Addr)
	}
	resp, body := get(t, r.URL("/v2/"), "", http.StatusOK)
	if v := resp.Header.Get("Docker-Distribution-Api-Version"); v != "registry/2.0" || strings.TrimSpace(string(body)) != "{}" {
		t.Errorf("GET /v2/: API version %q body %q, want registry/2.0 {}", v, body)
	}
	if fi, err := os.Stat(r.Storage); err != nil || !fi.IsDir() {
		t.Errorf("storage %s: %v", r.Storage, err)
	}

	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if resp, err := client().Get(r.URL("/v2/")); err == nil {
		resp.Body.Close()
		t.Errorf("GET /v2/ after Stop: %s, want the connection refused", resp.Status)
	}
	if err := r.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
}

func TestStartTwo(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr || a.Storage == b.Storage {
		t.Fatalf("two registries share %s / %s", a.Addr, a.Storage)
	}
	for _, r := range []*Registry{a, b} {
		resp, _ := get(t, r.URL("/v2/"), "", http.StatusOK)
		if resp.Header.Get(nonceHeader) != r.nonce {
			t.Errorf("%s answered with another registry's nonce", r.Addr)
		}
	}
}

// A registry that dies by itself is reported by Stop, with its log, and
// not mistaken for one the test stopped.
func TestStopReportsUnexpectedExit(t *testing.T) {
	r := Start(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("registry still running %v after SIGTERM", stopTimeout)
	}
	err := r.Stop()
	if err == nil || !strings.Contains(err.Error(), "exited by itself") {
		t.Fatalf("Stop after the registry died: %v, want an error saying it exited by itself", err)
	}
	t.Logf("as expected: %v", err)
}

func TestChildEnv(t *testing.T) {
	tests := []struct {
		name    string
		in, out []string
	}{
		{"empty", nil, []string{}},
		{"keeps others", []string{"PATH=/bin", "HOME=/root"}, []string{"PATH=/bin", "HOME=/root"}},
		{"drops overrides", []string{"REGISTRY_HTTP_ADDR=:5000", "PATH=/bin", "REGISTRY_STORAGE=s3"}, []string{"PATH=/bin"}},
		{"prefix only", []string{"MY_REGISTRY_X=1"}, []string{"MY_REGISTRY_X=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := childEnv(tt.in); !slices.Equal(got, tt.out) {
				t.Errorf("childEnv(%q) = %q, want %q", tt.in, got, tt.out)
			}
		})
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	e2e.RequireX(t, err == nil, "%s not found on PATH (%v)", name, err)
	return p
}

func runTool(t *testing.T, prog string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}

func TestPushBusybox(t *testing.T) {
	skopeo := requireTool(t, "skopeo")
	r := Start(t)
	layout := testimage.BuildBusybox(t, "busybox")
	idx, err := testimage.ReadIndex(layout)
	if err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("layout index: %+v, %v", idx, err)
	}
	want := idx.Manifests[0].Digest
	wantBody, err := os.ReadFile(testimage.BlobPath(layout, want))
	if err != nil {
		t.Fatal(err)
	}

	// --insecure-policy: the test must not depend on the host's
	// /etc/containers/policy.json, which only decides about signatures.
	runTool(t, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false",
		"oci:"+layout+":busybox", "docker://"+r.Addr+"/test/busybox:latest")

	var catalog struct{ Repositories []string }
	_, body := get(t, r.URL("/v2/_catalog"), "", http.StatusOK)
	if err := json.Unmarshal(body, &catalog); err != nil || !slices.Contains(catalog.Repositories, "test/busybox") {
		t.Errorf("catalog %s (%v): want test/busybox", body, err)
	}
	var tags struct{ Tags []string }
	_, body = get(t, r.URL("/v2/test/busybox/tags/list"), "", http.StatusOK)
	if err := json.Unmarshal(body, &tags); err != nil || !slices.Equal(tags.Tags, []string{"latest"}) {
		t.Errorf("tags %s (%v): want [latest]", body, err)
	}

	resp, body := get(t, r.URL("/v2/test/busybox/manifests/latest"), manifestOCI, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != manifestOCI {
		t.Errorf("manifest Content-Type %q, want %q", ct, manifestOCI)
	}
	// skopeo pushes the OCI manifest as it is: same bytes, same digest.
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != want || !bytes.Equal(body, wantBody) {
		t.Errorf("manifest: digest %s, %d bytes; want the layout's %s, %d bytes", dg, len(body), want, len(wantBody))
	}
	var man testimage.Manifest
	if err := json.Unmarshal(body, &man); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]testimage.Descriptor{man.Config}, man.Layers...) {
		_, blob := get(t, r.URL("/v2/test/busybox/blobs/"+d.Digest), "", http.StatusOK)
		if testimage.Digest(blob) != d.Digest || int64(len(blob)) != d.Size {
			t.Errorf("blob %s: got %d bytes hashing to %s, want %d", d.Digest, len(blob), testimage.Digest(blob), d.Size)
		}
	}

	// And back: a pull into a fresh layout yields the same manifest.
	pulled := filepath.Join(t.TempDir(), "pulled")
	runTool(t, skopeo, "--insecure-policy", "copy", "--src-tls-verify=false",
		"docker://"+r.Addr+"/test/busybox:latest", "oci:"+pulled+":back")
	idx, err = testimage.ReadIndex(pulled)
	if err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != want {
		t.Errorf("pulled index %+v (%v): want one manifest %s", idx, err, want)
	}
}

// testBlob is n bytes that do not compress, the same on every run.
func testBlob(n int) []byte {
	var b []byte
	for i := uint64(0); len(b) < n; i++ {
		sum := sha256.Sum256(binary.LittleEndian.AppendUint64(nil, i))
		b = append(b, sum[:]...)
	}
	return b[:n]
}

// pushBlob uploads blob to repo in two steps, POST then PUT with the
// digest (distribution spec, "Pushing a blob monolithically").
func pushBlob(t *testing.T, r *Registry, repo string, blob []byte) string {
	t.Helper()
	c := client()
	resp, err := c.Post(r.URL("/v2/"+repo+"/blobs/uploads/"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %s", resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	digest := testimage.Digest(blob)
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finish upload: %s", resp.Status)
	}
	return digest
}

func TestThrottledProxyRegistry(t *testing.T) {
	const size, rate = 192 << 10, 384 << 10 // half a second at least
	r := Start(t)
	digest := pushBlob(t, r, "test/blob", testBlob(size))
	path := "/v2/test/blob/blobs/" + digest

	_, direct := get(t, r.URL(path), "", http.StatusOK)
	addr := ThrottledProxy(t, r.Addr, rate)
	start := time.Now()
	_, via := get(t, (&url.URL{Scheme: "http", Host: addr, Path: path}).String(), "", http.StatusOK)
	elapsed := time.Since(start)

	if !bytes.Equal(via, direct) || len(direct) != size {
		t.Errorf("through the proxy: %d bytes, direct: %d bytes, want the same %d", len(via), len(direct), size)
	}
	// Every byte of the body waited its share of the rate before it left.
	if min := time.Duration(size) * time.Second / rate; elapsed < min {
		t.Errorf("%d bytes at %d bytes/s took %v, want at least %v", size, rate, elapsed, min)
	}
	t.Logf("%d bytes through the proxy at %d bytes/s: %v", size, rate, elapsed)
}

// The race Start retries on: someone binds the port between freePort and
// the registry's listen. Both ways it shows must read as errPortTaken.
func TestWaitReadyPortTaken(t *testing.T) {
	bin := requireTool(t, "docker-registry")
	tests := []struct {
		name  string
		squat func(t *testing.T) net.Listener
	}{
		{"silent listener", func(t *testing.T) net.Listener {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}},
		{"another server answering 200", func(t *testing.T) net.Listener {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "{}")
			}))
			t.Cleanup(srv.Close)
			return srv.Listener
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.squat(t)
			dir := t.TempDir()
			r, err := launch(bin, dir, filepath.Join(dir, "storage"), l.Addr().(*net.TCPAddr).Port)
			if err != nil {
				t.Fatal(err)
			}
			err = r.waitReady()
			r.Stop()
			if !errors.Is(err, errPortTaken) {
				t.Fatalf("waitReady on a taken port: %v, want errPortTaken\n%s", err, r.Log())
			}
		})
	}
}
