package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
// directories and the image's config. name may be empty.
func (st *Store) Prepare(ctx context.Context, image, name string, registries []string) (*Prepared, error) {
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
	c, err := st.s.CreateContainer("", names, img.ID, "", "", nil)
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

// RemoveContainer deletes a storage container made by Prepare, with its
// layer.
func (st *Store) RemoveContainer(id string) error {
	err := st.s.DeleteContainer(id)
	if errors.Is(err, storage.ErrContainerUnknown) || errors.Is(err, storage.ErrNotAContainer) {
		return &ContainerNotFoundError{ID: id}
	}
	return err
}
