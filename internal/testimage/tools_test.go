package testimage

// These tests check the layouts with tools that share no code with this
// package: skopeo (containers/image) reads them as a client would, umoci
// unpacks them as an independent layer applier. A missing tool is a skip,
// or a failure under SANDBOX_TEST_STRICT=1.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"sandbox/internal/e2e"
)

// toolTimeout bounds each run of skopeo or umoci: a hung tool fails the
// test instead of hanging the suite.
const toolTimeout = 2 * time.Minute

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	e2e.RequireX(t, err == nil, "%s not found on PATH (%v)", name, err)
	return p
}

// runTool runs prog and returns its stdout, failing the test with stderr
// if it fails.
func runTool(t *testing.T, prog string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

func TestSkopeoInspect(t *testing.T) {
	skopeo := requireTool(t, "skopeo")
	dir := t.TempDir()
	cfg := Config{
		Entrypoint: []string{"/bin/tool"},
		Cmd:        []string{"x"},
		Env:        []string{"PATH=/bin", "LANG=C.UTF-8"},
		WorkingDir: "/srv",
		User:       "33:33",
		Labels:     map[string]string{"org.opencontainers.image.title": "multi"},
	}
	multi := MultiLayerLayers()
	small := []Layer{{{Kind: File, Path: "f", Data: []byte("f\n"), Mode: 0o644}}}
	// Two refs in one layout: skopeo must find each by its ref name.
	images := []struct {
		ref    string
		cfg    Config
		layers []Layer
	}{
		{"multi", cfg, multi},
		{"small", Config{Cmd: []string{"/f"}}, small},
	}
	digests := map[string]string{}
	for _, im := range images {
		d, err := WriteLayout(dir, im.ref, im.cfg, im.layers...)
		if err != nil {
			t.Fatal(err)
		}
		digests[im.ref] = d
	}
	for _, im := range images {
		t.Run(im.ref, func(t *testing.T) {
			src := "oci:" + dir + ":" + im.ref

			raw := runTool(t, skopeo, "inspect", "--raw", src)
			if Digest(raw) != digests[im.ref] {
				t.Errorf("inspect --raw: bytes hash to %s, want the manifest %s", Digest(raw), digests[im.ref])
			}
			var man Manifest
			if err := json.Unmarshal(raw, &man); err != nil {
				t.Fatalf("inspect --raw: %v\n%s", err, raw)
			}

			rawCfg := runTool(t, skopeo, "inspect", "--config", "--raw", src)
			if Digest(rawCfg) != man.Config.Digest {
				t.Errorf("inspect --config --raw: bytes hash to %s, manifest says %s", Digest(rawCfg), man.Config.Digest)
			}

			var img ImageConfig
			out := runTool(t, skopeo, "inspect", "--config", src)
			if err := json.Unmarshal(out, &img); err != nil {
				t.Fatalf("inspect --config: %v\n%s", err, out)
			}
			want := RuntimeConfig{User: im.cfg.User, Env: im.cfg.Env, Entrypoint: im.cfg.Entrypoint,
				Cmd: im.cfg.Cmd, WorkingDir: im.cfg.WorkingDir, Labels: im.cfg.Labels}
			if !reflect.DeepEqual(img.Config, want) {
				t.Errorf("inspect --config: config %+v, want %+v", img.Config, want)
			}
			var diffIDs []string
			for _, l := range im.layers {
				_, d, _, err := l.Blob()
				if err != nil {
					t.Fatal(err)
				}
				diffIDs = append(diffIDs, d)
			}
			if !reflect.DeepEqual(img.RootFS.DiffIDs, diffIDs) || img.Architecture != runtime.GOARCH || img.OS != "linux" {
				t.Errorf("inspect --config: %s/%s diff_ids %q, want linux/%s %q", img.OS, img.Architecture, img.RootFS.DiffIDs, runtime.GOARCH, diffIDs)
			}

			// The summary skopeo users read: digest and layers as listed.
			var sum struct {
				Digest string
				Layers []string
				Env    []string
			}
			out = runTool(t, skopeo, "inspect", src)
			if err := json.Unmarshal(out, &sum); err != nil {
				t.Fatalf("inspect: %v\n%s", err, out)
			}
			var layerDigests []string
			for _, d := range man.Layers {
				layerDigests = append(layerDigests, d.Digest)
			}
			if sum.Digest != digests[im.ref] || !reflect.DeepEqual(sum.Layers, layerDigests) || !reflect.DeepEqual(sum.Env, im.cfg.Env) {
				t.Errorf("inspect: digest %s layers %q env %q, want %s %q %q", sum.Digest, sum.Layers, sum.Env, digests[im.ref], layerDigests, im.cfg.Env)
			}
		})
	}
}

// umociUnpack unpacks ref of the layout at dir with umoci --rootless and
// returns the bundle's rootfs. --rootless because the suite also runs
// unprivileged; it drops ownership (everything belongs to the caller).
func umociUnpack(t *testing.T, dir, ref string) string {
	t.Helper()
	umoci := requireTool(t, "umoci")
	bundle := filepath.Join(t.TempDir(), "bundle")
	runTool(t, umoci, "unpack", "--rootless", "--image", dir+":"+ref, bundle)
	return filepath.Join(bundle, "rootfs")
}

func TestUmociUnpackBusybox(t *testing.T) {
	requireTool(t, "umoci")
	dir := BuildBusybox(t, "busybox")
	rootfs := umociUnpack(t, dir, "busybox")

	bb, err := FindBusybox()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(rootfs, "bin", "busybox")
	got, err := os.ReadFile(bin)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("rootfs/bin/busybox: %d bytes (err %v), want a copy of %s", len(got), err, bb)
	}
	if fi, err := os.Lstat(bin); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Errorf("rootfs/bin/busybox: %v (err %v), want a regular file 0755", fi.Mode(), err)
	}
	for _, a := range BusyboxApplets() {
		p := filepath.Join(rootfs, "bin", a)
		if target, err := os.Readlink(p); err != nil || target != "busybox" {
			t.Errorf("rootfs/bin/%s: link %q (err %v), want a symlink to busybox", a, target, err)
		}
	}
	for p, want := range map[string]string{"etc/passwd": BusyboxPasswd, "etc/group": BusyboxGroup, "etc/hostname": BusyboxHostname} {
		if got, err := os.ReadFile(filepath.Join(rootfs, p)); err != nil || string(got) != want {
			t.Errorf("rootfs/%s: %q (err %v), want %q", p, got, err, want)
		}
	}
	for p, mode := range map[string]fs.FileMode{"tmp": fs.ModeDir | fs.ModeSticky | 0o777, "root": fs.ModeDir | 0o700, "proc": fs.ModeDir | 0o755} {
		if fi, err := os.Lstat(filepath.Join(rootfs, p)); err != nil || fi.Mode() != mode {
			t.Errorf("rootfs/%s: %v (err %v), want %v", p, fi.Mode(), err, mode)
		}
	}
	// The unpacked shell runs: the link resolves within rootfs/bin and
	// busybox picks the applet from argv[0].
	out := runTool(t, filepath.Join(rootfs, "bin", "sh"), "-c", "echo shell works")
	if string(out) != "shell works\n" {
		t.Errorf("rootfs/bin/sh -c: %q", out)
	}
}

func TestUmociUnpackMultiLayer(t *testing.T) {
	requireTool(t, "umoci")
	dir := Build(t, "multi", Config{}, MultiLayerLayers()...)
	rootfs := umociUnpack(t, dir, "multi")

	expect := map[string]ExpectedFile{}
	for _, w := range MultiLayerExpect() {
		expect[w.Path] = w
	}
	// Nothing beyond what MultiLayerExpect lists.
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil || rel == "." {
			return err
		}
		if w, ok := expect[filepath.ToSlash(rel)]; !ok || w.Absent {
			t.Errorf("rootfs/%s: present, MultiLayerExpect does not list it", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range MultiLayerExpect() {
		p := filepath.Join(rootfs, filepath.FromSlash(w.Path))
		fi, err := os.Lstat(p)
		if w.Absent {
			switch {
			case err == nil:
				t.Errorf("rootfs/%s: present (%v), want absent", w.Path, fi.Mode())
			case !errors.Is(err, fs.ErrNotExist):
				t.Errorf("rootfs/%s: want absent: %v", w.Path, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("rootfs/%s: %v", w.Path, err)
			continue
		}
		var kind Kind
		switch fi.Mode().Type() {
		case fs.ModeDir:
			kind = Dir
		case 0:
			kind = File
		case fs.ModeSymlink:
			kind = Symlink
		case fs.ModeNamedPipe:
			kind = FIFO
		}
		if w.Kind == Hardlink && kind == File {
			other, err := os.Lstat(filepath.Join(rootfs, filepath.FromSlash(w.Linkname)))
			if err != nil || !os.SameFile(fi, other) {
				t.Errorf("rootfs/%s: not the same inode as %s (err %v)", w.Path, w.Linkname, err)
			}
			kind = Hardlink
		}
		if kind != w.Kind {
			t.Errorf("rootfs/%s: %v, want %v", w.Path, fi.Mode(), w.Kind)
			continue
		}
		if kind != Symlink && unixMode(fi.Mode()) != w.Mode {
			t.Errorf("rootfs/%s: mode %#o, want %#o", w.Path, unixMode(fi.Mode()), w.Mode)
		}
		switch kind {
		case File, Hardlink:
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, w.Data) {
				t.Errorf("rootfs/%s: %q (err %v), want %q", w.Path, got, err, w.Data)
			}
		case Symlink:
			if got, err := os.Readlink(p); err != nil || got != w.Linkname {
				t.Errorf("rootfs/%s: -> %q (err %v), want -> %q", w.Path, got, err, w.Linkname)
			}
		}
	}
}

// unixMode turns Go's file mode back into chmod's bits, the form
// ExpectedFile.Mode uses.
func unixMode(m fs.FileMode) int64 {
	b := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}
