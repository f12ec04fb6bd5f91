package testimage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Media types and the annotation WriteLayout uses (image-spec
// media-types.md, annotations.md).
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// Config is the part of an image config a test chooses; architecture, os,
// created and rootfs are filled in by WriteLayout.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Labels     map[string]string
}

// The JSON documents of an image layout. Exported so that tests read back
// what was written with the same field names; only the fields this package
// writes are here.
type (
	// Descriptor points at a blob (image-spec descriptor.md).
	Descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Platform    *Platform         `json:"platform,omitempty"`
	}
	// Platform says what a manifest in an index runs on.
	Platform struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	}
	// Index is index.json.
	Index struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType,omitempty"`
		Manifests     []Descriptor `json:"manifests"`
	}
	// Manifest is an image manifest.
	Manifest struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        Descriptor   `json:"config"`
		Layers        []Descriptor `json:"layers"`
	}
	// ImageConfig is the config blob.
	ImageConfig struct {
		Created      time.Time      `json:"created"`
		Architecture string         `json:"architecture"`
		OS           string         `json:"os"`
		Config       RuntimeConfig  `json:"config"`
		RootFS       RootFS         `json:"rootfs"`
		History      []HistoryEntry `json:"history,omitempty"`
	}
	// RuntimeConfig is the config blob's "config" object.
	RuntimeConfig struct {
		User       string            `json:"User,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Cmd        []string          `json:"Cmd,omitempty"`
		WorkingDir string            `json:"WorkingDir,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
	}
	// RootFS lists the layers' diff IDs, bottom first.
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	// HistoryEntry is one line of the config's history, one per layer.
	HistoryEntry struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by,omitempty"`
	}
)

// WriteLayout writes an image made of layers (bottom first) and cfg into
// the OCI image layout at dir, creating the layout if needed, and tags it
// refName in index.json. Other refs already in the layout stay; a ref of
// the same name is replaced. Blobs already present are not rewritten: the
// layout is content addressed. It returns the manifest's digest.
func WriteLayout(dir, refName string, cfg Config, layers ...Layer) (manifestDigest string, err error) {
	if refName == "" {
		return "", errors.New("write layout: empty ref name")
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return "", fmt.Errorf("write layout: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n")); err != nil {
		return "", fmt.Errorf("write layout: %w", err)
	}

	img := ImageConfig{
		Created:      epoch(),
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: RuntimeConfig{
			User:       cfg.User,
			Env:        cfg.Env,
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			WorkingDir: cfg.WorkingDir,
			Labels:     cfg.Labels,
		},
		RootFS: RootFS{Type: "layers", DiffIDs: []string{}},
	}
	man := Manifest{SchemaVersion: 2, MediaType: MediaTypeManifest, Layers: []Descriptor{}}
	for i, l := range layers {
		blob, diffID, digest, err := l.Blob()
		if err != nil {
			return "", fmt.Errorf("write layout: layer %d: %w", i, err)
		}
		if err := writeBlob(dir, digest, blob); err != nil {
			return "", fmt.Errorf("write layout: layer %d: %w", i, err)
		}
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
		img.History = append(img.History, HistoryEntry{Created: epoch(), CreatedBy: fmt.Sprintf("testimage layer %d", i)})
		man.Layers = append(man.Layers, Descriptor{MediaType: MediaTypeLayer, Digest: digest, Size: int64(len(blob))})
	}

	cfgDesc, err := writeJSONBlob(dir, MediaTypeConfig, img)
	if err != nil {
		return "", fmt.Errorf("write layout: config: %w", err)
	}
	man.Config = cfgDesc
	manDesc, err := writeJSONBlob(dir, MediaTypeManifest, man)
	if err != nil {
		return "", fmt.Errorf("write layout: manifest: %w", err)
	}
	manDesc.Annotations = map[string]string{AnnotationRefName: refName}
	manDesc.Platform = &Platform{Architecture: img.Architecture, OS: img.OS}

	if err := addToIndex(dir, manDesc); err != nil {
		return "", fmt.Errorf("write layout: %w", err)
	}
	return manDesc.Digest, nil
}

// ReadIndex reads dir/index.json.
func ReadIndex(dir string) (Index, error) {
	var idx Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return idx, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("%s: %w", filepath.Join(dir, "index.json"), err)
	}
	return idx, nil
}

// BlobPath returns where the blob of digest lives in the layout at dir.
func BlobPath(dir, digest string) string {
	algo, hexPart, _ := strings.Cut(digest, ":")
	return filepath.Join(dir, "blobs", algo, hexPart)
}

func addToIndex(dir string, desc Descriptor) error {
	idx, err := ReadIndex(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		idx = Index{SchemaVersion: 2, MediaType: MediaTypeIndex}
	case err != nil:
		return err
	}
	ref := desc.Annotations[AnnotationRefName]
	kept := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationRefName] != ref {
			kept = append(kept, d)
		}
	}
	idx.Manifests = append(kept, desc)
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "index.json"), append(b, '\n'))
}

func writeJSONBlob(dir, mediaType string, v any) (Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Descriptor{}, err
	}
	d := Descriptor{MediaType: mediaType, Digest: Digest(b), Size: int64(len(b))}
	return d, writeBlob(dir, d.Digest, b)
}

func writeBlob(dir, digest string, b []byte) error {
	p := BlobPath(dir, digest)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return writeFileAtomic(p, b)
}

// writeFileAtomic writes through a temporary file and a rename, so that a
// reader never sees half a blob or half an index under its final name.
func writeFileAtomic(name string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	// A layout may be read by another user than the one who wrote it (a
	// root test harness building, the unprivileged user pulling);
	// CreateTemp's 0600 would lock that user out.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
