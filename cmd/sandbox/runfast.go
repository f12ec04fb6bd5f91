package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A run with --rm of an image already in the store needs no storage
// container: its layers are the root's lower layers and the writable
// layer is a tmpfs of the sandbox's own, gone with it. Then the run reads
// what it needs straight from containers/storage's files (the image list,
// the layer list, the config blob, all written atomically) and starts no
// store helper, which takes two thirds of the time of a run otherwise.
//
// While it runs it holds a shared flock on the image's run lock,
// GRAPHROOT/sandbox-runs/ID.lock; the store helper's rmi takes it
// exclusively (image.RunLockPath) and refuses while a run holds it.

// storedImage is an image of the store as a run from its layers needs it.
type storedImage struct {
	id     string
	layers []string // lowest first
	config imageConfig
	lock   int // the run lock, held shared until release
}

type imageConfig struct {
	Entrypoint []string `json:"Entrypoint"`
	Cmd        []string `json:"Cmd"`
	Env        []string `json:"Env"`
	WorkingDir string   `json:"WorkingDir"`
	User       string   `json:"User"`
}

func (si *storedImage) release() {
	if si != nil && si.lock >= 0 {
		unix.Close(si.lock)
		si.lock = -1
	}
}

// openStored finds ref (a full name; a tag of latest when none is given)
// in the store at graphRoot and takes its run lock. Any error means: use
// the store helper.
func openStored(graphRoot, ref string) (*storedImage, error) {
	if strings.Contains(ref, "@") {
		return nil, errors.New("a digest reference")
	}
	name := ref
	if i := strings.LastIndex(name, "/"); !strings.Contains(name[i+1:], ":") {
		name += ":latest"
	}
	id, err := imageByName(graphRoot, name)
	if err != nil {
		return nil, err
	}
	// The lock first, then the image again: an rmi holding the lock
	// exclusively has gone by, or is refused while we hold it.
	dir := filepath.Join(graphRoot, "sandbox-runs")
	if err := unix.Mkdir(dir, 0o700); err != nil && err != unix.EEXIST {
		return nil, err
	}
	fd, err := unix.Open(filepath.Join(dir, id+".lock"), unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	si := &storedImage{id: id, lock: fd}
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		si.release()
		return nil, fmt.Errorf("run lock: %w", err)
	}
	fail := func(err error) (*storedImage, error) {
		si.release()
		return nil, err
	}
	if again, err := imageByName(graphRoot, name); err != nil || again != id {
		return fail(fmt.Errorf("%s changed while it was being locked", name))
	}
	top, err := imageTopLayer(graphRoot, id)
	if err != nil {
		return fail(err)
	}
	if si.layers, err = layerChain(graphRoot, top); err != nil {
		return fail(err)
	}
	if si.config, err = imageConfigOf(graphRoot, id); err != nil {
		return fail(err)
	}
	return si, nil
}

type storedImageRecord struct {
	ID    string   `json:"id"`
	Names []string `json:"names"`
	Layer string   `json:"layer"`
}

func readImages(graphRoot string) ([]storedImageRecord, error) {
	b, err := os.ReadFile(filepath.Join(graphRoot, "overlay-images", "images.json"))
	if err != nil {
		return nil, err
	}
	var imgs []storedImageRecord
	if err := json.Unmarshal(b, &imgs); err != nil {
		return nil, fmt.Errorf("images.json: %w", err)
	}
	return imgs, nil
}

func imageByName(graphRoot, name string) (string, error) {
	imgs, err := readImages(graphRoot)
	if err != nil {
		return "", err
	}
	for _, img := range imgs {
		for _, n := range img.Names {
			if n == name {
				return img.ID, nil
			}
		}
	}
	return "", fmt.Errorf("no image %s", name)
}

func imageTopLayer(graphRoot, id string) (string, error) {
	imgs, err := readImages(graphRoot)
	if err != nil {
		return "", err
	}
	for _, img := range imgs {
		if img.ID == id {
			return img.Layer, nil
		}
	}
	return "", fmt.Errorf("no image %s", id)
}

// layerChain lists the directories of top and its parents, lowest first.
func layerChain(graphRoot, top string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(graphRoot, "overlay-layers", "layers.json"))
	if err != nil {
		return nil, err
	}
	var ls []struct {
		ID     string `json:"id"`
		Parent string `json:"parent"`
	}
	if err := json.Unmarshal(b, &ls); err != nil {
		return nil, fmt.Errorf("layers.json: %w", err)
	}
	parent := map[string]string{}
	for _, l := range ls {
		parent[l.ID] = l.Parent
	}
	var dirs []string
	for id := top; id != ""; id = parent[id] {
		if _, ok := parent[id]; !ok || !validID(id) || len(dirs) > 500 {
			return nil, fmt.Errorf("layer %s: not in layers.json", id)
		}
		d := filepath.Join(graphRoot, "overlay", id, "diff")
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("layer %s: no directory", id)
		}
		dirs = append([]string{d}, dirs...)
	}
	return dirs, nil
}

// imageConfigOf reads the image's config blob, which the store keeps as
// big data named by its digest (the image id), and checks the digest.
func imageConfigOf(graphRoot, id string) (imageConfig, error) {
	if !validID(id) {
		return imageConfig{}, fmt.Errorf("image id %q", id)
	}
	key := "sha256:" + id
	b, err := os.ReadFile(filepath.Join(graphRoot, "overlay-images", id, "="+base64.StdEncoding.EncodeToString([]byte(key))))
	if err != nil {
		return imageConfig{}, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != id {
		return imageConfig{}, fmt.Errorf("image %s: config blob does not match its digest", id)
	}
	var c struct {
		Config imageConfig `json:"config"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return imageConfig{}, fmt.Errorf("image %s: config: %w", id, err)
	}
	return c.Config, nil
}

// validID is a 64-digit hex id, safe as a file name.
func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}
