package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/docker"
	dockerarchive "github.com/containers/image/v5/docker/archive"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/manifest"
	ociarchive "github.com/containers/image/v5/oci/archive"
	"github.com/containers/image/v5/pkg/docker/config"
	istorage "github.com/containers/image/v5/storage"
	"github.com/containers/image/v5/tarball"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Remote are the options of operations that talk to a registry.
type Remote struct {
	Registries []string  // search list for short names
	TLSVerify  bool      // verify the registry's certificate; HTTPS only when set
	AuthFile   string    // "" for containers/image's default
	Progress   io.Writer // copy progress, nil for none
}

func (r Remote) sys() *types.SystemContext { return systemContext(r.AuthFile, r.TLSVerify) }

// Summary is one image as `images` lists it.
type Summary struct {
	ID      string    `json:"id"`
	Names   []string  `json:"names"`
	Digest  string    `json:"digest,omitempty"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
}

// Config is the part of an image's OCI config the run path uses.
type Config struct {
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	User       string            `json:"User,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// Details is what `image inspect` shows.
type Details struct {
	Summary
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	Config       Config   `json:"config"`
	Layers       []string `json:"layers"` // diff ids, bottom first
}

// copyImage copies src into the store under name through the checking
// destination.
func (st *Store) copyImage(ctx context.Context, src types.ImageReference, name reference.Named, srcSys *types.SystemContext, progress io.Writer) (*storage.Image, error) {
	tmp, release, err := st.bigFilesDir()
	if err != nil {
		return nil, err
	}
	defer release()
	dsys := st.sys(nil, tmp)
	srcSys = st.sys(srcSys, tmp)
	id := ""
	if name == nil {
		// An image without a name is stored under the id of its config,
		// as the storage destination would compute it.
		if id, err = configID(ctx, src, srcSys); err != nil {
			return nil, err
		}
	}
	dref, err := istorage.Transport.NewStoreReference(st.s, name, id)
	if err != nil {
		return nil, err
	}
	pc, err := policy()
	if err != nil {
		return nil, err
	}
	defer pc.Destroy()
	manBlob, err := copy.Image(ctx, pc, checkedRef{ImageReference: dref, st: st}, src, &copy.Options{
		SourceCtx:      srcSys,
		DestinationCtx: dsys,
		ReportWriter:   progress,
		// Signatures are not verified (policy), so they are not read:
		// their default place is root's /var/lib/containers/sigstore
		// whenever the caller is uid 0, in a user namespace too.
		RemoveSignatures: true,
	})
	if err != nil {
		return nil, st.unwrapCopy(err)
	}
	// By the digest of what was copied: a name may have moved to another
	// image by the time we look (a concurrent pull of a newer tag).
	md, err := manifest.Digest(manBlob)
	if err != nil {
		return nil, err
	}
	return st.imageByDigest(md)
}

// configID is the hex digest of src's config.
func configID(ctx context.Context, src types.ImageReference, sys *types.SystemContext) (string, error) {
	img, err := src.NewImage(ctx, sys)
	if err != nil {
		return "", err
	}
	defer img.Close()
	return img.ConfigInfo().Digest.Encoded(), nil
}

func (st *Store) imageByDigest(d digest.Digest) (*storage.Image, error) {
	imgs, err := st.s.ImagesByDigest(d)
	if err != nil || len(imgs) == 0 {
		return nil, fmt.Errorf("image %s not in the store after the copy: %v", d, err)
	}
	return imgs[0], nil
}

// unwrapCopy keeps our own typed errors visible through containers/image's
// wrapping.
func (st *Store) unwrapCopy(err error) error {
	var (
		le *LayerError
		de *DigestError
		ns *NoSpaceError
	)
	switch {
	case errors.As(err, &le):
		return le
	case errors.As(err, &de):
		return de
	case errors.As(err, &ns):
		return ns
	case isNoSpace(err):
		// containers/storage's own writes: its blob copy, the layer's
		// files. It removes the layer it was writing.
		return &NoSpaceError{Path: st.s.GraphRoot(), Err: err}
	}
	return err
}

// NoSpaceError is the file system under Path out of space (or the user's
// quota) while an image was being written. Nothing of the image stays.
type NoSpaceError struct {
	Path string
	Err  error
}

func (e *NoSpaceError) Error() string { return "no space left in " + e.Path + ": " + e.Err.Error() }
func (e *NoSpaceError) Unwrap() error { return e.Err }

// isNoSpace tells a full file system or quota, also where a library kept
// only the text of the error.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error())
}

// sys completes a system context for one copy: temporary files in tmp,
// the blob info cache in the store rather than in podman's directories.
func (st *Store) sys(sc *types.SystemContext, tmp string) *types.SystemContext {
	if sc == nil {
		sc = systemContext("", true)
	}
	sc.BigFilesTemporaryDir = tmp
	sc.BlobInfoCacheDir = st.s.GraphRoot()
	return sc
}

// PullError is a failed pull of Ref from one registry after another.
type PullError struct {
	Ref   string
	Tried []string
	Err   error
}

func (e *PullError) Error() string {
	return fmt.Sprintf("pull %s (tried %s): %v", e.Ref, strings.Join(e.Tried, ", "), e.Err)
}
func (e *PullError) Unwrap() error { return e.Err }

// Pull fetches ref from its registry (a short name: from the first
// registry of the search list that has it) into the store.
func (st *Store) Pull(ctx context.Context, ref string, r Remote) (*Summary, error) {
	cands, err := Candidates(ref, r.Registries)
	if err != nil {
		return nil, err
	}
	var tried []string
	var last error
	for _, c := range cands {
		tried = append(tried, c.String())
		src, err := docker.NewReference(c)
		if err != nil {
			return nil, &RefError{Ref: c.String(), Reason: err.Error()}
		}
		img, err := st.copyImage(ctx, src, c, r.sys(), r.Progress)
		if err == nil {
			return st.summary(img)
		}
		last = err
		if !isNotFound(err) {
			break
		}
	}
	var le *LayerError
	var de *DigestError
	if errors.As(last, &le) || errors.As(last, &de) {
		return nil, last
	}
	return nil, &PullError{Ref: ref, Tried: tried, Err: last}
}

// Push copies a local image to dest, a registry reference
// (REGISTRY/NAME[:TAG]).
func (st *Store) Push(ctx context.Context, name, dest string, r Remote) error {
	img, err := st.lookup(name, r.Registries)
	if err != nil {
		return err
	}
	if IsShort(dest) {
		return &RefError{Ref: dest, Reason: "a push destination must name its registry, e.g. registry.example.com/" + dest}
	}
	cands, err := Candidates(dest, nil)
	if err != nil {
		return err
	}
	dref, err := docker.NewReference(cands[0])
	if err != nil {
		return &RefError{Ref: dest, Reason: err.Error()}
	}
	return st.export(ctx, img, dref, r.sys(), r.Progress)
}

// export copies a stored image to dref.
func (st *Store) export(ctx context.Context, img *storage.Image, dref types.ImageReference, dsys *types.SystemContext, progress io.Writer) error {
	tmp, release, err := st.bigFilesDir()
	if err != nil {
		return err
	}
	defer release()
	sref, err := istorage.Transport.NewStoreReference(st.s, nil, img.ID)
	if err != nil {
		return err
	}
	pc, err := policy()
	if err != nil {
		return err
	}
	defer pc.Destroy()
	dsys = st.sys(dsys, tmp)
	_, err = copy.Image(ctx, pc, dref, sref, &copy.Options{
		SourceCtx:      st.sys(nil, tmp),
		DestinationCtx: dsys,
		ReportWriter:   progress,
	})
	if err != nil {
		return st.unwrapCopy(err)
	}
	return nil
}

// Save writes a local image to file as a docker-archive or oci-archive.
func (st *Store) Save(ctx context.Context, name, file, format string, registries []string) error {
	img, err := st.lookup(name, registries)
	if err != nil {
		return err
	}
	var tagged reference.NamedTagged
	if len(img.Names) > 0 {
		if n, err := reference.ParseNormalizedNamed(img.Names[0]); err == nil {
			tagged, _ = reference.TagNameOnly(n).(reference.NamedTagged)
		}
	}
	var dref types.ImageReference
	switch format {
	case "docker-archive", "":
		dref, err = dockerarchive.NewReference(file, tagged)
	case "oci-archive":
		tag := ""
		if tagged != nil {
			tag = tagged.String()
		}
		dref, err = ociarchive.NewReference(file, tag)
	default:
		return &FormatError{Format: format}
	}
	if err != nil {
		return err
	}
	return st.export(ctx, img, dref, nil, nil)
}

// FormatError is an archive format save does not write.
type FormatError struct{ Format string }

func (e *FormatError) Error() string {
	return fmt.Sprintf("unknown archive format %q (docker-archive or oci-archive)", e.Format)
}

// Load reads every image of a docker-archive or oci-archive file into the
// store. The format is found from the file's contents.
func (st *Store) Load(ctx context.Context, file string, progress io.Writer) ([]Summary, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	var out []Summary
	// An OCI archive holds oci-layout at its top; a docker archive holds
	// manifest.json.
	if isOCIArchive(file) {
		src, err := ociarchive.NewReference(file, "")
		if err != nil {
			return nil, err
		}
		name := ociName(file)
		img, err := st.copyImage(ctx, src, name, nil, progress)
		if err != nil {
			return nil, err
		}
		s, err := st.summary(img)
		if err != nil {
			return nil, err
		}
		return []Summary{*s}, nil
	}
	tmp, release, err := st.bigFilesDir()
	if err != nil {
		return nil, err
	}
	defer release()
	// A compressed archive is decompressed to a file in tmp first.
	rd, err := dockerarchive.NewReader(st.sys(nil, tmp), file)
	if err != nil {
		return nil, fmt.Errorf("%s: neither an oci-archive nor a docker-archive: %w", file, err)
	}
	defer rd.Close()
	groups, err := rd.List()
	if err != nil {
		return nil, err
	}
	for _, refs := range groups {
		if len(refs) == 0 {
			continue
		}
		var name reference.Named
		if n := refs[0].DockerReference(); n != nil {
			name = n
		}
		img, err := st.copyImage(ctx, refs[0], name, nil, progress)
		if err != nil {
			return nil, err
		}
		for _, extra := range refs[1:] {
			if n := extra.DockerReference(); n != nil {
				if err := st.s.AddNames(img.ID, []string{n.String()}); err != nil {
					return nil, err
				}
			}
		}
		s, err := st.summary(img)
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	return out, nil
}

// ociName is the name an oci-archive's single image carries in the
// org.opencontainers.image.ref.name annotation of its index.json, when
// that is a full name (skopeo and podman write one; a bare tag like
// "latest" is not). It is read from the tar directly: containers/image
// would unpack the whole archive to find it.
func ociName(file string) reference.Named {
	b, err := archiveEntry(file, "index.json", 1<<20)
	if err != nil || b == nil {
		return nil
	}
	var idx imgspecv1.Index
	if json.Unmarshal(b, &idx) != nil || len(idx.Manifests) != 1 {
		return nil
	}
	n := idx.Manifests[0].Annotations[imgspecv1.AnnotationRefName]
	if n == "" || IsShort(n) {
		return nil
	}
	named, err := reference.ParseNormalizedNamed(n)
	if err != nil {
		return nil
	}
	return reference.TagNameOnly(named)
}

// isOCIArchive reports whether file is a tar holding an oci-layout file
// at its top, as an oci-archive does (a docker-archive holds
// manifest.json instead).
func isOCIArchive(file string) bool {
	b, err := archiveEntry(file, "oci-layout", 4096)
	return err == nil && b != nil
}

// archiveEntry returns the contents of the entry name at the top of the
// tar file, nil when there is none. Entries are skipped by seeking.
func archiveEntry(file, name string, limit int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(h.Name) == name && h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, limit))
		}
	}
}

// Import makes an image of a single layer from a root filesystem tarball,
// named localhost/NAME[:TAG] unless name gives a registry.
func (st *Store) Import(ctx context.Context, file, name string) (*Summary, error) {
	if IsShort(name) {
		name = LocalRegistry + "/" + name
	}
	cands, err := Candidates(name, nil)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, err
	}
	src, err := tarball.NewReference([]string{abs}, nil)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	cfg := imgspecv1.Image{Created: &now, Platform: imgspecv1.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	if err := src.(interface {
		ConfigUpdate(imgspecv1.Image, map[string]string) error
	}).ConfigUpdate(cfg, nil); err != nil {
		return nil, err
	}
	img, err := st.copyImage(ctx, src, cands[0], nil, nil)
	if err != nil {
		return nil, err
	}
	return st.summary(img)
}

// List returns every image, newest first.
func (st *Store) List() ([]Summary, error) {
	imgs, err := st.s.Images()
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(imgs))
	for i := range imgs {
		s, err := st.summary(&imgs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

func (st *Store) summary(img *storage.Image) (*Summary, error) {
	size, err := st.s.ImageSize(img.ID)
	if err != nil {
		size = -1
	}
	names := img.Names
	if names == nil {
		names = []string{}
	}
	return &Summary{ID: img.ID, Names: names, Digest: img.Digest.String(), Created: img.Created.UTC(), Size: size}, nil
}

// Tag adds the name newName to a local image.
func (st *Store) Tag(name, newName string, registries []string) error {
	img, err := st.lookup(name, registries)
	if err != nil {
		return err
	}
	if IsShort(newName) {
		newName = LocalRegistry + "/" + newName
	}
	c, err := Candidates(newName, nil)
	if err != nil {
		return err
	}
	return st.s.AddNames(img.ID, []string{c[0].String()})
}

// InUseError is an image that storage containers still use.
type InUseError struct {
	Name       string
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("image %s is used by %d container(s): %s", e.Name, len(e.Containers), strings.Join(e.Containers, ", "))
}

// Remove removes a name from a local image, and the image with its
// layers once it has no name left. By id, or with force, the image goes
// whatever names it has; force also removes the storage containers that
// use it. It returns the ids of the images deleted.
func (st *Store) Remove(name string, force bool, registries []string) (untagged []string, deleted []string, err error) {
	img, err := st.lookup(name, registries)
	if err != nil {
		return nil, nil, err
	}
	byID := strings.HasPrefix(img.ID, strings.TrimPrefix(name, "sha256:"))
	if !byID && !force && len(img.Names) > 1 {
		// Only the name goes: the image keeps its others.
		cands, _ := Candidates(name, append([]string{LocalRegistry}, registries...))
		for _, c := range cands {
			for _, n := range img.Names {
				if n == c.String() {
					if err := st.s.RemoveNames(img.ID, []string{n}); err != nil {
						return nil, nil, err
					}
					return []string{n}, nil, nil
				}
			}
		}
	}
	cs, err := st.s.Containers()
	if err != nil {
		return nil, nil, err
	}
	var users []string
	for _, c := range cs {
		if c.ImageID == img.ID {
			users = append(users, c.ID)
		}
	}
	if len(users) > 0 {
		if !force {
			return nil, nil, &InUseError{Name: name, Containers: users}
		}
		for _, c := range users {
			if err := st.s.DeleteContainer(c); err != nil {
				return nil, nil, err
			}
		}
	}
	// A sandbox run straight from the image's layers (run --rm) holds a
	// shared lock on RunLockPath while it runs; it is not a storage
	// container, and no force removes the layers under it.
	unlock, err := st.lockRuns(img.ID)
	if err != nil {
		return nil, nil, &InUseError{Name: name, Containers: []string{"a running sandbox (" + err.Error() + ")"}}
	}
	defer unlock()
	if _, err := st.s.DeleteImage(img.ID, true); err != nil {
		return nil, nil, err
	}
	return img.Names, []string{img.ID}, nil
}

// RunLockPath is the lock file that runs of image id hold (shared) while
// they use its layers, below the store's graph root. The CLI creates and
// takes it without this package: keep the two in step.
func RunLockPath(graphRoot, id string) string {
	return filepath.Join(graphRoot, "sandbox-runs", id+".lock")
}

// lockRuns takes image id's run lock exclusively, failing at once when a
// run holds it. No lock file means no run ever used the image.
func (st *Store) lockRuns(id string) (func(), error) {
	fd, err := unix.Open(RunLockPath(st.s.GraphRoot(), id), unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errors.New("it holds the image's run lock")
		}
		return nil, err
	}
	return func() { unix.Close(fd) }, nil
}

// Inspect returns a local image's details.
func (st *Store) Inspect(ctx context.Context, name string, registries []string) (*Details, error) {
	img, err := st.lookup(name, registries)
	if err != nil {
		return nil, err
	}
	s, err := st.summary(img)
	if err != nil {
		return nil, err
	}
	oci, err := st.ociConfig(ctx, img)
	if err != nil {
		return nil, err
	}
	d := &Details{Summary: *s, Architecture: oci.Architecture, OS: oci.OS, Config: Config{
		Entrypoint: oci.Config.Entrypoint, Cmd: oci.Config.Cmd, Env: oci.Config.Env,
		WorkingDir: oci.Config.WorkingDir, User: oci.Config.User, Labels: oci.Config.Labels,
	}, Layers: []string{}}
	for _, l := range oci.RootFS.DiffIDs {
		d.Layers = append(d.Layers, l.String())
	}
	return d, nil
}

// ociConfig reads an image's config through containers/image, which
// converts docker schema 2 configs to OCI.
func (st *Store) ociConfig(ctx context.Context, img *storage.Image) (*imgspecv1.Image, error) {
	ref, err := istorage.Transport.NewStoreReference(st.s, nil, img.ID)
	if err != nil {
		return nil, err
	}
	ic, err := ref.NewImage(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer ic.Close()
	return ic.OCIConfig(ctx)
}

// Login checks username and password against registry and stores them
// in the auth file.
func Login(ctx context.Context, registry, username, password string, r Remote) (string, error) {
	sys := r.sys()
	if err := docker.CheckAuth(ctx, sys, username, password, registry); err != nil {
		return "", &AuthError{Registry: registry, Err: err}
	}
	return config.SetCredentials(sys, registry, username, password)
}

// Logout removes the credentials for registry from the auth file.
func Logout(registry string, r Remote) error {
	err := config.RemoveAuthentication(r.sys(), registry)
	if errors.Is(err, config.ErrNotLoggedIn) {
		return &NotLoggedInError{Registry: registry}
	}
	return err
}

// AuthError is a registry that refused the credentials, or could not be
// asked.
type AuthError struct {
	Registry string
	Err      error
}

func (e *AuthError) Error() string { return "log in to " + e.Registry + ": " + e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// NotLoggedInError is a logout from a registry with no stored credentials.
type NotLoggedInError struct{ Registry string }

func (e *NotLoggedInError) Error() string { return "not logged in to " + e.Registry }
