package image

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"sandbox/internal/e2e"
	"sandbox/internal/registry"
	"sandbox/internal/testimage"
)

// skopeoInspect is the part of `skopeo inspect` the round trips compare.
type skopeoInspect struct {
	Digest string   `json:"Digest"`
	Layers []string `json:"Layers"`
}

func inspectWith(t *testing.T, args ...string) skopeoInspect {
	t.Helper()
	var si skopeoInspect
	out := skopeo(t, append([]string{"inspect"}, args...)...)
	if err := json.Unmarshal([]byte(out), &si); err != nil {
		t.Fatalf("skopeo inspect %v: %v\n%s", args, err, out)
	}
	return si
}

// diffIDs reads the image's layer diff ids with skopeo.
func diffIDs(t *testing.T, args ...string) []string {
	t.Helper()
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	out := skopeo(t, append([]string{"inspect", "--config"}, args...)...)
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("skopeo inspect --config %v: %v\n%s", args, err, out)
	}
	return cfg.RootFS.DiffIDs
}

// Guards interoperability with skopeo (containers/image as an independent
// client): what sandbox pushes and saves, skopeo reads with the same
// layers; what skopeo writes to archives, sandbox loads.
func TestRoundTripsWithSkopeo(t *testing.T) {
	s := newStore(t)
	reg := registry.Start(t)
	layers := testimage.MultiLayerLayers()
	layout := layoutOf(t, "multi", layers...)
	var want []string
	for _, l := range layers {
		_, d, _, err := l.Blob()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, d)
	}
	ref := pushLayout(t, reg, layout, "multi", "test/multi:1")
	s.ok("pull", "--tls-verify=false", ref)
	dir := t.TempDir()

	t.Run("push", func(t *testing.T) {
		dest := reg.Addr + "/round/trip:2"
		s.ok("push", "--tls-verify=false", ref, dest)
		if got := diffIDs(t, "--tls-verify=false", "docker://"+dest); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("pushed image has diff ids %v, want %v", got, want)
		}
		if si := inspectWith(t, "--tls-verify=false", "docker://"+dest); len(si.Layers) != 3 || si.Digest == "" {
			t.Errorf("skopeo inspect of the pushed image: %+v", si)
		}
		r := s.run("push", "--tls-verify=false", ref, "short/name")
		e2e.WantSandboxError(t, r, "invalid image reference", "must name its registry")
	})
	for _, format := range []string{"docker-archive", "oci-archive"} {
		t.Run("save "+format, func(t *testing.T) {
			file := filepath.Join(dir, format+".tar")
			s.ok("save", "--format", format, "-o", file, ref)
			if got := diffIDs(t, format+":"+file); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("saved %s has diff ids %v, want %v", format, got, want)
			}
		})
	}
	for _, format := range []string{"docker-archive", "oci-archive"} {
		t.Run("load "+format, func(t *testing.T) {
			s2 := newStore(t)
			file := filepath.Join(dir, "skopeo-"+format+".tar")
			name := "example.com/loaded/" + strings.TrimSuffix(format, "-archive") + ":7"
			skopeo(t, "copy", "oci:"+layout+":multi", format+":"+file+":"+name)
			r := s2.ok("load", "-i", file)
			if !strings.Contains(r.Stdout, "Loaded image: "+name) {
				t.Errorf("load printed %q, want Loaded image: %s", r.Stdout, name)
			}
			imgs := s2.images()
			if len(imgs) != 1 || len(imgs[0].Names) != 1 || imgs[0].Names[0] != name {
				t.Errorf("after load: %+v, want one image named %s", imgs, name)
			}
			if n := len(s2.layers()); n != 3 {
				t.Errorf("after load: %d layers, want 3", n)
			}
		})
	}
	t.Run("save and load back", func(t *testing.T) {
		s2 := newStore(t)
		file := filepath.Join(dir, "docker-archive.tar")
		s2.ok("load", "-i", file)
		a, b := s.images(), s2.images()
		if len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID {
			t.Errorf("image ids differ after save and load: %+v vs %+v", a, b)
		}
	})
}
