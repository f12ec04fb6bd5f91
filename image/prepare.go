package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/containers/storage"
)

// Prepared is a storage container on an image: what the run path needs to
// mount the image's root and start its command. The directories are host
// paths; mounting them needs a user namespace with the store's map.
type Prepared struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	ImageID string `json:"image"`
	Config  Config `json:"config"`
	// Layers are the image's layer directories, lowest first: overlay's
	// lowerdir wants them in the reverse order.
	Layers []string `json:"layers"`
	Upper  string   `json:"upper"`
	Work   string   `json:"work"`
	// MountOptions are the overlay options the layers were written for:
	// whiteouts and opaque directories are user.overlay.* xattrs.
	MountOptions []string `json:"mountOptions"`
}

// Prepare creates a storage container on a local image and returns its
// directories and the image's config. name may be empty. rmLock, when
// set, names the lock file (below GRAPHROOT/sandbox-runs) that the run of
// a --rm container holds while it runs: a container whose lock is free
// belongs to a run that was killed before it could remove it, and
// Prepare removes such containers first.
func (st *Store) Prepare(ctx context.Context, image, name, rmLock string, registries []string) (*Prepared, error) {
	st.sweepRmContainers()
	img, err := st.lookup(image, registries)
	if err != nil {
		return nil, err
	}
	oci, err := st.ociConfig(ctx, img)
	if err != nil {
		return nil, err
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	var meta string
	if rmLock != "" {
		if filepath.Base(rmLock) != rmLock || !strings.HasPrefix(rmLock, rmLockPrefix) {
			return nil, fmt.Errorf("prepare: invalid run lock name %q", rmLock)
		}
		b, err := json.Marshal(containerMeta{RmLock: rmLock})
		if err != nil {
			return nil, err
		}
		meta = string(b)
	}
	c, err := st.s.CreateContainer("", names, img.ID, "", meta, nil)
	if err != nil {
		return nil, err
	}
	p := &Prepared{ID: c.ID, Name: name, ImageID: img.ID, Config: Config{
		Entrypoint: oci.Config.Entrypoint, Cmd: oci.Config.Cmd, Env: oci.Config.Env,
		WorkingDir: oci.Config.WorkingDir, User: oci.Config.User, Labels: oci.Config.Labels,
	}, Layers: []string{}, MountOptions: []string{"userxattr"}}
	p.Layers, err = st.lowerDirs(img.TopLayer)
	if err != nil {
		st.s.DeleteContainer(c.ID)
		return nil, err
	}
	dir := filepath.Join(st.s.GraphRoot(), Driver, c.LayerID)
	p.Upper, p.Work = filepath.Join(dir, "diff"), filepath.Join(dir, "work")
	for _, d := range append([]string{p.Upper, p.Work}, p.Layers...) {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			st.s.DeleteContainer(c.ID)
			return nil, fmt.Errorf("prepare %s: layer directory %s missing: %v", image, d, err)
		}
	}
	return p, nil
}

// lowerDirs returns the directories of top and its parents, lowest first.
func (st *Store) lowerDirs(top string) ([]string, error) {
	var dirs []string
	for id := top; id != ""; {
		l, err := st.s.Layer(id)
		if err != nil {
			return nil, err
		}
		dirs = append([]string{st.layerDir(l.ID)}, dirs...)
		id = l.Parent
	}
	return dirs, nil
}

// ContainerNotFoundError is a storage container that does not exist.
type ContainerNotFoundError struct{ ID string }

func (e *ContainerNotFoundError) Error() string { return "no storage container " + e.ID }

// containerMeta is what sandbox keeps in a storage container's metadata.
type containerMeta struct {
	// RmLock is the lock file of the --rm run using the container.
	RmLock string `json:"sandboxRmLock,omitempty"`
}

// rmLockPrefix starts the name of every --rm run's lock file.
const rmLockPrefix = "rm-"

// RmLockDir is where --rm runs keep their lock files, below the graph
// root; the CLI makes them without this package: keep the two in step.
func RmLockDir(graphRoot string) string { return filepath.Join(graphRoot, "sandbox-runs") }

// sweepRmContainers removes the containers of --rm runs that are gone:
// their lock file is free, or missing. Best effort: a container that
// cannot be removed now is tried again by the next Prepare.
func (st *Store) sweepRmContainers() {
	cs, err := st.s.Containers()
	if err != nil {
		return
	}
	for _, c := range cs {
		var m containerMeta
		if c.Metadata == "" || json.Unmarshal([]byte(c.Metadata), &m) != nil || m.RmLock == "" ||
			filepath.Base(m.RmLock) != m.RmLock || !strings.HasPrefix(m.RmLock, rmLockPrefix) {
			continue
		}
		lock := filepath.Join(RmLockDir(st.s.GraphRoot()), m.RmLock)
		f, err := os.OpenFile(lock, os.O_RDWR|unix.O_NOFOLLOW, 0)
		if err == nil {
			// Held by its live run: EWOULDBLOCK, and the container stays.
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
				f.Close()
				continue
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if st.s.DeleteContainer(c.ID) == nil {
			os.Remove(lock)
		}
		if f != nil {
			f.Close()
		}
	}
}

// RemoveContainer deletes a storage container made by Prepare, with its
// layer.
func (st *Store) RemoveContainer(id string) error {
	err := st.s.DeleteContainer(id)
	if errors.Is(err, storage.ErrContainerUnknown) || errors.Is(err, storage.ErrNotAContainer) {
		return &ContainerNotFoundError{ID: id}
	}
	return err
}
