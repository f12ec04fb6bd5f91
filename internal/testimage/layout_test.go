package testimage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func readJSON(t *testing.T, p string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return b
}

// checkImage verifies the image ref in the layout at dir against what it
// was built from: every descriptor's digest and size match the blob, the
// manifest lists the layers' digests and the config their diff IDs.
func checkImage(t *testing.T, dir, ref string, cfg Config, layers []Layer) (manifestDigest string) {
	t.Helper()
	idx, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var desc *Descriptor
	for i, d := range idx.Manifests {
		if d.Annotations[AnnotationRefName] == ref {
			if desc != nil {
				t.Fatalf("index lists ref %q twice", ref)
			}
			desc = &idx.Manifests[i]
		}
	}
	if desc == nil {
		t.Fatalf("index has no ref %q: %+v", ref, idx.Manifests)
	}
	if desc.MediaType != MediaTypeManifest || desc.Platform == nil ||
		desc.Platform.Architecture != runtime.GOARCH || desc.Platform.OS != "linux" {
		t.Errorf("index descriptor %+v: want an OCI manifest for linux/%s", desc, runtime.GOARCH)
	}
	var man Manifest
	b := readJSON(t, BlobPath(dir, desc.Digest), &man)
	if Digest(b) != desc.Digest || int64(len(b)) != desc.Size {
		t.Errorf("manifest blob: digest %s size %d, index says %s %d", Digest(b), len(b), desc.Digest, desc.Size)
	}
	if man.SchemaVersion != 2 || man.MediaType != MediaTypeManifest || man.Config.MediaType != MediaTypeConfig {
		t.Errorf("manifest %+v: want schemaVersion 2, OCI manifest and config media types", man)
	}
	var img ImageConfig
	b = readJSON(t, BlobPath(dir, man.Config.Digest), &img)
	if Digest(b) != man.Config.Digest || int64(len(b)) != man.Config.Size {
		t.Errorf("config blob: digest %s size %d, manifest says %s %d", Digest(b), len(b), man.Config.Digest, man.Config.Size)
	}
	if img.Architecture != runtime.GOARCH || img.OS != "linux" || !img.Created.Equal(epoch()) {
		t.Errorf("config %s/%s created %v, want linux/%s created %v", img.OS, img.Architecture, img.Created, runtime.GOARCH, epoch())
	}
	wantRC := RuntimeConfig{User: cfg.User, Env: cfg.Env, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, WorkingDir: cfg.WorkingDir, Labels: cfg.Labels}
	if !reflect.DeepEqual(img.Config, wantRC) {
		t.Errorf("config.config = %+v, want %+v", img.Config, wantRC)
	}
	if img.RootFS.Type != "layers" || len(img.RootFS.DiffIDs) != len(layers) || len(man.Layers) != len(layers) || len(img.History) != len(layers) {
		t.Fatalf("%d diff IDs, %d manifest layers, %d history entries, want %d", len(img.RootFS.DiffIDs), len(man.Layers), len(img.History), len(layers))
	}
	for i, l := range layers {
		blob, diffID, digest, err := l.Blob()
		if err != nil {
			t.Fatal(err)
		}
		if img.RootFS.DiffIDs[i] != diffID {
			t.Errorf("layer %d: config diff ID %s, want %s", i, img.RootFS.DiffIDs[i], diffID)
		}
		d := man.Layers[i]
		if d.MediaType != MediaTypeLayer || d.Digest != digest || d.Size != int64(len(blob)) {
			t.Errorf("layer %d: descriptor %+v, want %s %s size %d", i, d, MediaTypeLayer, digest, len(blob))
		}
		onDisk, err := os.ReadFile(BlobPath(dir, d.Digest))
		if err != nil || Digest(onDisk) != digest {
			t.Errorf("layer %d: blob on disk missing or wrong (err %v)", i, err)
		}
	}
	return desc.Digest
}

// checkBlobs verifies that every file under blobs/sha256 is named after the
// hash of its contents and that nothing else (a leftover temporary file)
// lies in the layout.
func checkBlobs(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == "oci-layout" || rel == "index.json":
			return nil
		case strings.HasPrefix(rel, filepath.Join("blobs", "sha256")+"/"):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if got := sha256hex(b); got != d.Name() {
				t.Errorf("%s hashes to %s", rel, got)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644 so other users can read the layout", rel, info.Mode())
			}
		default:
			t.Errorf("unexpected file %s in layout", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	multi := MultiLayerLayers()
	cfgA := Config{
		Entrypoint: []string{"/bin/tool"},
		Cmd:        []string{"--flag", "arg with space"},
		Env:        []string{"PATH=/bin", "A=1"},
		WorkingDir: "/srv/www",
		User:       "1000:1000",
		Labels:     map[string]string{"k": "v", "org.example.x": "y"},
	}
	small := []Layer{{{Kind: File, Path: "hello", Data: []byte("hi\n"), Mode: 0o644}}}

	digA, err := WriteLayout(dir, "multi", cfgA, multi...)
	if err != nil {
		t.Fatal(err)
	}
	digB, err := WriteLayout(dir, "small", Config{}, small...)
	if err != nil {
		t.Fatal(err)
	}
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	readJSON(t, filepath.Join(dir, "oci-layout"), &layout)
	if layout.Version != "1.0.0" {
		t.Errorf("oci-layout version %q, want 1.0.0", layout.Version)
	}
	var idx Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	if idx.SchemaVersion != 2 || idx.MediaType != MediaTypeIndex || len(idx.Manifests) != 2 {
		t.Fatalf("index %+v: want schemaVersion 2, OCI index, 2 manifests", idx)
	}
	if got := checkImage(t, dir, "multi", cfgA, multi); got != digA {
		t.Errorf("ref multi: index has %s, WriteLayout returned %s", got, digA)
	}
	if got := checkImage(t, dir, "small", Config{}, small); got != digB {
		t.Errorf("ref small: index has %s, WriteLayout returned %s", got, digB)
	}
	checkBlobs(t, dir)

	// Re-tagging replaces the ref in place and keeps the other one.
	cfgA2 := cfgA
	cfgA2.Cmd = []string{"--other"}
	digA2, err := WriteLayout(dir, "multi", cfgA2, multi...)
	if err != nil {
		t.Fatal(err)
	}
	if digA2 == digA {
		t.Errorf("a different config gave the same manifest digest %s", digA2)
	}
	idx, err = ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, d := range idx.Manifests {
		refs = append(refs, d.Annotations[AnnotationRefName])
	}
	slices.Sort(refs)
	if !slices.Equal(refs, []string{"multi", "small"}) {
		t.Errorf("refs after re-tag: %q, want [multi small]", refs)
	}
	checkImage(t, dir, "multi", cfgA2, multi)
	checkImage(t, dir, "small", Config{}, small)
	checkBlobs(t, dir)

	// Same inputs, another layout: same digest.
	digA3, err := WriteLayout(t.TempDir(), "elsewhere", cfgA, multi...)
	if err != nil {
		t.Fatal(err)
	}
	if digA3 != digA {
		t.Errorf("rebuilt manifest %s, first build %s: not reproducible", digA3, digA)
	}
}

func TestWriteLayoutErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(dir string) error
		ref     string
		layers  []Layer
		wantErr string
	}{
		{name: "empty ref", ref: "", wantErr: "empty ref"},
		{name: "bad entry", ref: "x", layers: []Layer{{{Kind: Raw, Path: "x"}}}, wantErr: "layer 0: raw entry"},
		{name: "corrupt index", ref: "x", wantErr: "index.json",
			setup: func(dir string) error { return os.WriteFile(filepath.Join(dir, "index.json"), []byte("{"), 0o644) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				if err := tt.setup(dir); err != nil {
					t.Fatal(err)
				}
			}
			_, err := WriteLayout(dir, tt.ref, Config{}, tt.layers...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	dir := Build(t, "built", Config{Cmd: []string{"/bin/true"}}, MultiLayerLayers()...)
	checkImage(t, dir, "built", Config{Cmd: []string{"/bin/true"}}, MultiLayerLayers())
	checkBlobs(t, dir)
}
