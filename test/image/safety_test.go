package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"sandbox/internal/e2e"
	"sandbox/internal/registry"
	"sandbox/internal/testimage"
)

// maliciousNotice is, for the cases the store takes in a neutralised
// form, the words of the notice it must print; the other cases must be
// refused, naming the entry, with nothing stored.
var maliciousNotice = map[string]string{
	"char-device-mem":        "not created",
	"block-device-disk":      "not created",
	"setuid-root-shell":      "bit cleared",
	"overlay-opaque-xattr":   "trusted.overlay.opaque not set",
	"overlay-redirect-xattr": "trusted.overlay.redirect not set",
}

// Guards "safety of what comes from outside": every hostile layer of
// testimage.MaliciousLayers, pulled from a registry and loaded from an
// oci-archive, is refused with the entry named and nothing committed, or
// taken neutralised with a notice; nothing is ever written outside the
// store.
func TestMaliciousLayers(t *testing.T) {
	reg := registry.Start(t)
	// The escapes aim at /tmp, at ../../ of the layer directory, and at
	// the directories holding the store.
	watch := func(s *store) []string {
		return []string{"/tmp/evil", filepath.Join(s.root, "evil"), filepath.Join(s.root, "overlay", "evil"),
			filepath.Join(filepath.Dir(s.root), "evil"), filepath.Join(s.root, "..", "..", "evil")}
	}
	for _, c := range testimage.MaliciousLayers() {
		t.Run(c.Name, func(t *testing.T) {
			layout := layoutOf(t, c.Name, c.Layers...)
			archive := filepath.Join(t.TempDir(), "image.oci.tar")
			skopeo(t, "copy", "oci:"+layout+":"+c.Name, "oci-archive:"+archive+":"+reg.Addr+"/evil/"+c.Name+":1")
			ref := pushLayout(t, reg, layout, c.Name, "evil/"+c.Name+":1")
			for _, way := range []struct {
				name string
				args []string
			}{
				{"pull", []string{"pull", "--tls-verify=false", ref}},
				{"load", []string{"load", "-i", archive}},
			} {
				t.Run(way.name, func(t *testing.T) {
					s := newStore(t)
					r := s.run(way.args...)
					checkMalicious(t, s, c, r)
					for _, p := range watch(s) {
						if _, err := os.Lstat(p); err == nil {
							t.Errorf("%s exists: the layer wrote outside the store", p)
						}
					}
				})
			}
			// import takes one layer as a root file system tarball.
			if len(c.Layers) == 1 {
				t.Run("import", func(t *testing.T) {
					s := newStore(t)
					raw, err := c.Layers[0].Tar()
					if err != nil {
						t.Fatal(err)
					}
					dir := t.TempDir()
					os.WriteFile(filepath.Join(dir, "rootfs.tar"), raw, 0o644)
					r := e2e.RunSandbox(t, e2e.RunOpts{Dir: dir, Timeout: pullTimeout}, s.args("import", "rootfs.tar", "evil")...)
					checkMalicious(t, s, c, r)
				})
			}
		})
	}
}

func checkMalicious(t *testing.T, s *store, c testimage.Malicious, r e2e.Result) {
	t.Helper()
	notice, neutralise := maliciousNotice[c.Name]
	if !neutralise {
		e2e.WantSandboxError(t, r, "refusing image", c.Offending, "nothing of the image was stored")
		s.wantEmpty("refused " + c.Name)
		return
	}
	if r.Code != 0 || !strings.Contains(r.Stderr, "notice") || !strings.Contains(r.Stderr, c.Offending) || !strings.Contains(r.Stderr, notice) {
		t.Fatalf("want the image taken with a notice about %s (%q)\n%s", c.Offending, notice, r)
	}
	ls := s.layers()
	if len(ls) != len(c.Layers) {
		t.Fatalf("%d layers stored, want %d", len(ls), len(c.Layers))
	}
	// The offending entry is in the top layer: the one no layer sits on.
	parents := map[string]bool{}
	for _, l := range ls {
		parents[l.Parent] = true
	}
	var top layerRecord
	for _, l := range ls {
		if !parents[l.ID] {
			top = l
		}
	}
	p := filepath.Join(s.root, "overlay", top.ID, "diff", strings.TrimSuffix(c.Offending, "/"))
	var st syscall.Stat_t
	err := syscall.Lstat(p, &st)
	switch c.Class {
	case testimage.ClassDeviceNode:
		if err == nil {
			t.Errorf("%s exists on disk (mode %o), want no device node", p, st.Mode)
		}
	case testimage.ClassSetuidRoot:
		if err != nil || st.Mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 || st.Mode&0o777 != 0o755 {
			t.Errorf("%s: %v mode %o, want 0755 without setuid/setgid", p, err, st.Mode&0o7777)
		}
	case testimage.ClassOverlayXattr:
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		buf := make([]byte, 4096)
		n, _ := unix.Llistxattr(p, buf)
		if bytes.Contains(buf[:n], []byte("overlay.")) {
			t.Errorf("%s carries overlay xattrs: %q", p, bytes.Split(buf[:n], []byte{0}))
		}
	}
}

// Guards "a digest mismatch commits nothing": a layer blob corrupted in
// the registry's own storage (same size, other bytes) is refused, and a
// tampered oci-archive too.
func TestDigestMismatch(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	layers := testimage.MultiLayerLayers()
	layout := layoutOf(t, "multi", layers...)
	ref := pushLayout(t, reg, layout, "multi", "test/corrupt:1")
	_, _, dg, err := layers[1].Blob()
	if err != nil {
		t.Fatal(err)
	}
	hexPart := strings.TrimPrefix(dg, "sha256:")
	blob := filepath.Join(reg.Storage, "docker", "registry", "v2", "blobs", "sha256", hexPart[:2], hexPart, "data")
	corrupt(t, blob)
	r := s.run("pull", "--tls-verify=false", ref)
	e2e.WantSandboxError(t, r, "does not match its digest", dg, "nothing of the image was stored")
	s.wantEmpty("corrupted pull")

	// The same through an archive: a layout whose blob was altered.
	corrupt(t, testimage.BlobPath(layout, dg))
	archive := filepath.Join(t.TempDir(), "bad.tar")
	mustTar(t, layout, archive)
	r = s.run("load", "-i", archive)
	if r.Code != 125 || !strings.Contains(r.Stderr, "digest") {
		t.Fatalf("load of a tampered archive: want a digest error\n%s", r)
	}
	s.wantEmpty("corrupted load")
}

// corrupt flips bytes in the middle of a file, keeping its size.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+16 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mustTar writes dir as an uncompressed tar: an oci-archive of a layout.
func mustTar(t *testing.T, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
