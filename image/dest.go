package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/containers/image/v5/manifest"
	"github.com/containers/image/v5/pkg/compression"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// DigestError is a blob whose bytes do not hash to the digest the image
// names: corrupted in transit, in the registry, or in the archive.
type DigestError struct {
	Expected, Actual string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("blob %s: content hashes to %s", e.Expected, e.Actual)
}

// checkedRef is the storage reference of the image being written, whose
// destination checks every layer before the store sees it.
type checkedRef struct {
	types.ImageReference
	st *Store
}

func (r checkedRef) NewImageDestination(ctx context.Context, sys *types.SystemContext) (types.ImageDestination, error) {
	d, err := r.ImageReference.NewImageDestination(ctx, sys)
	if err != nil {
		return nil, err
	}
	return &checkedDest{ImageDestination: d, st: r.st, scanned: map[digest.Digest]*LayerInfo{}, reused: map[digest.Digest]bool{}}, nil
}

// checkedDest wraps containers/image's storage destination. It is used
// through the public ImageDestination interface on purpose: layers are
// then committed only in Commit, after every blob has been checked, so a
// rejected layer leaves nothing in the store (through the private
// interface the storage destination commits each layer as it arrives).
type checkedDest struct {
	types.ImageDestination
	st *Store

	mu       sync.Mutex
	scanned  map[digest.Digest]*LayerInfo // by blob digest
	reused   map[digest.Digest]bool       // blobs the store already had
	manifest []byte
}

// PutBlob spools the blob to an unnamed temporary file (gone with the
// process, however it dies), checks its digest and, for a layer, its tar
// stream, and only then hands it to the store.
func (d *checkedDest) PutBlob(ctx context.Context, stream io.Reader, info types.BlobInfo, cache types.BlobInfoCache, isConfig bool) (types.BlobInfo, error) {
	f, err := openTmpfile(d.st.s.GraphRoot())
	if err != nil {
		return types.BlobInfo{}, err
	}
	defer f.Close()
	h := sha256.New()
	spool := &errWriter{w: f}
	n, err := io.Copy(io.MultiWriter(spool, h), ctxReader{ctx, stream})
	// A failed write is ours (the store's file system); then the bytes
	// read decide: the source's reader fails at the end of a blob whose
	// digest does not match, which is a digest error either way.
	switch {
	case spool.err != nil && isNoSpace(spool.err):
		return types.BlobInfo{}, &NoSpaceError{Path: d.st.s.GraphRoot(), Err: spool.err}
	case spool.err != nil:
		return types.BlobInfo{}, fmt.Errorf("spool blob %s in %s: %w", short(info.Digest.String()), d.st.s.GraphRoot(), spool.err)
	}
	actual := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if info.Digest != "" && info.Digest.Algorithm() == digest.SHA256 && actual != info.Digest.String() {
		return types.BlobInfo{}, &DigestError{Expected: info.Digest.String(), Actual: actual}
	}
	if err != nil {
		return types.BlobInfo{}, fmt.Errorf("read blob %s: %w", short(info.Digest.String()), err)
	}
	if !isConfig {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return types.BlobInfo{}, err
		}
		layer, err := checkBlob(actual, f)
		if err != nil {
			return types.BlobInfo{}, err
		}
		d.mu.Lock()
		d.scanned[digest.Digest(actual)] = layer
		d.mu.Unlock()
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return types.BlobInfo{}, err
	}
	info.Size = n
	out, err := d.ImageDestination.PutBlob(ctx, f, info, cache, isConfig)
	if err == nil && !isConfig && out.Digest != "" && out.Digest.String() != actual {
		d.mu.Lock()
		d.scanned[out.Digest] = d.scanned[digest.Digest(actual)]
		d.mu.Unlock()
	}
	return out, err
}

// errWriter keeps the first error of w, to tell a failed write (the
// spool's file system) from a failed read (the source).
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// checkBlob decompresses a layer blob and runs CheckLayer on it.
func checkBlob(dg string, r io.Reader) (*LayerInfo, error) {
	decompress, r, err := compression.DetectCompression(r)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", short(dg), err)
	}
	if decompress != nil {
		rc, err := decompress(r)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", short(dg), err)
		}
		defer rc.Close()
		r = rc
	}
	return CheckLayer(dg, r)
}

func (d *checkedDest) TryReusingBlob(ctx context.Context, info types.BlobInfo, cache types.BlobInfoCache, canSubstitute bool) (bool, types.BlobInfo, error) {
	ok, out, err := d.ImageDestination.TryReusingBlob(ctx, info, cache, canSubstitute)
	if ok && err == nil {
		d.mu.Lock()
		d.reused[out.Digest] = true
		d.mu.Unlock()
	}
	return ok, out, err
}

func (d *checkedDest) PutManifest(ctx context.Context, m []byte, instance *digest.Digest) error {
	d.mu.Lock()
	d.manifest = append([]byte(nil), m...)
	d.mu.Unlock()
	return d.ImageDestination.PutManifest(ctx, m, instance)
}

// Commit checks the layers against each other (CheckStack) before the
// store commits anything, then finishes the layers it wrote (finish).
func (d *checkedDest) Commit(ctx context.Context, unparsed types.UnparsedImage) error {
	m, err := manifest.FromBlob(d.manifest, manifest.GuessMIMEType(d.manifest))
	if err != nil {
		return fmt.Errorf("parse manifest: %w", err)
	}
	var stack []*LayerInfo
	fresh := map[int]*LayerInfo{}
	for _, l := range m.LayerInfos() {
		if l.EmptyLayer {
			continue
		}
		if info, ok := d.scanned[l.Digest]; ok {
			fresh[len(stack)] = info
			stack = append(stack, info)
			continue
		}
		// A layer the store already had: what matters to the layers above
		// is which symlinks it leaves, read from its directory.
		info, err := d.st.infoFromStore(l.Digest)
		if err != nil {
			return err
		}
		stack = append(stack, info)
	}
	if len(fresh) > 0 {
		if err := CheckStack(stack); err != nil {
			return err
		}
	}
	if err := d.ImageDestination.Commit(ctx, unparsed); err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil
	}
	md, err := manifest.Digest(d.manifest)
	if err != nil {
		return err
	}
	img, err := d.st.imageByDigest(md)
	if err != nil {
		return err
	}
	ids, err := d.st.layerChain(img.TopLayer)
	if err != nil {
		return err
	}
	if len(ids) != len(stack) {
		return fmt.Errorf("image %s: %d layers stored for %d in the manifest", img.ID, len(ids), len(stack))
	}
	for i := range ids {
		info, ok := fresh[i]
		if !ok {
			continue
		}
		d.st.Notices = append(d.st.Notices, info.Notices...)
		if err := d.st.finish(ids[:i+1], info); err != nil {
			return err
		}
	}
	return nil
}

// layerChain returns the ids of top and its parents, lowest first.
func (st *Store) layerChain(top string) ([]string, error) {
	var ids []string
	for id := top; id != ""; {
		l, err := st.s.Layer(id)
		if err != nil {
			return nil, err
		}
		ids = append([]string{l.ID}, ids...)
		id = l.Parent
	}
	return ids, nil
}

// finish completes a layer the store has just written; chain is its id
// preceded by those of the layers below it, lowest first.
//
// Directories the layer's entries lie below without the layer making them
// (a whiteout data/.wh.x with no data/ entry) were made by the applier as
// root-owned 0755 directories, which in the overlay's merged view would
// hide the owner and mode of the same directory below: they get the
// owner and mode of the directory in the nearest layer below that has
// it, as a layer store that flattens layers would leave them. Then the
// setuid and setgid bits CheckLayer reported are cleared.
//
// Paths are resolved inside the layer directories (os.Root), so a name
// cannot lead elsewhere.
func (st *Store) finish(chain []string, info *LayerInfo) error {
	root, err := os.OpenRoot(st.layerDir(chain[len(chain)-1]))
	if err != nil {
		return err
	}
	defer root.Close()
	dirs := make([]string, 0, len(info.Implicit))
	for d := range info.Implicit {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		if err := st.inheritDir(root, chain[:len(chain)-1], dir); err != nil {
			return fmt.Errorf("layer %s: directory %s: %w", short(info.Digest), dir, err)
		}
	}
	for _, p := range info.SetID {
		fi, err := root.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // replaced or removed later in the layer
			}
			return fmt.Errorf("clear setuid bits: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
			continue
		}
		if err := root.Chmod(p, fi.Mode()&^(fs.ModeSetuid|fs.ModeSetgid)); err != nil {
			return fmt.Errorf("clear setuid bits: %w", err)
		}
	}
	return nil
}

// inheritDir gives dir in root the owner and mode of dir in the nearest of
// lowers (lowest first) that has it.
func (st *Store) inheritDir(root *os.Root, lowers []string, dir string) error {
	fi, err := root.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return nil // not made by the applier after all
	}
	for i := len(lowers) - 1; i >= 0; i-- {
		lr, err := os.OpenRoot(st.layerDir(lowers[i]))
		if err != nil {
			return err
		}
		below, err := lr.Lstat(dir)
		lr.Close()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !below.IsDir() {
			return nil // a whiteout or a file: nothing to inherit
		}
		s := below.Sys().(*syscall.Stat_t)
		if err := root.Lchown(dir, int(s.Uid), int(s.Gid)); err != nil {
			return err
		}
		return root.Chmod(dir, below.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	return nil
}

// layerByDigest finds a stored layer by the digest of its blob, or of its
// uncompressed tar.
func (st *Store) layerByDigest(d digest.Digest) (*storage.Layer, error) {
	ls, err := st.s.LayersByCompressedDigest(d)
	if err != nil || len(ls) == 0 {
		ls, err = st.s.LayersByUncompressedDigest(d)
	}
	if err != nil && !errors.Is(err, storage.ErrLayerUnknown) {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, fmt.Errorf("layer %s: not in the store", short(d.String()))
	}
	return &ls[0], nil
}

// infoFromStore describes a stored layer as the layers above it see it.
func (st *Store) infoFromStore(d digest.Digest) (*LayerInfo, error) {
	l, err := st.layerByDigest(d)
	if err != nil {
		return nil, err
	}
	return infoFromDir(d.String(), st.layerDir(l.ID))
}

// infoFromDir reads the symlinks, whiteouts (0:0 character devices) and
// opaque directories of a layer directory the overlay driver wrote.
func infoFromDir(dg, dir string) (*LayerInfo, error) {
	info := &LayerInfo{Digest: dg, Symlinks: map[string]string{}, Implicit: map[string]string{}}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			info.Symlinks[rel] = target
		case t&fs.ModeCharDevice != 0:
			var s unix.Stat_t
			if err := unix.Lstat(p, &s); err == nil && s.Rdev == 0 {
				info.Removed = append(info.Removed, rel)
			}
		case t.IsDir():
			for _, x := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
				v := make([]byte, 1)
				if n, err := unix.Lgetxattr(p, x, v); err == nil && n == 1 && v[0] == 'y' {
					info.Opaque = append(info.Opaque, rel)
				}
			}
			info.Replaced = append(info.Replaced, rel)
		default:
			info.Replaced = append(info.Replaced, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read layer %s: %w", short(dg), err)
	}
	return info, nil
}

// openTmpfile opens an unnamed file (O_TMPFILE, open(2)) in dir: it has
// no name to leave behind when the process is killed. Where the file
// system has no O_TMPFILE, a named file is unlinked at once instead,
// which leaves a name only if the process dies in between.
func openTmpfile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed file for checking a blob)")), nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) {
		return nil, fmt.Errorf("temporary file in %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".blob-")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ctxReader stops a copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
