package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"
)

// epochUnix (2024-01-01T00:00:00Z) is the mtime of every entry and the
// created date of every config. A constant, not time.Now, so that a rebuilt
// image has the same digests and a test can compare them across runs.
const epochUnix = 1704067200

func epoch() time.Time { return time.Unix(epochUnix, 0).UTC() }

// Kind is the type of a tar entry.
type Kind int

// The kinds of entry a Layer holds. Whiteout and OpaqueWhiteout are the OCI
// whiteout files (image-spec layer.md): regular empty files whose names
// carry the meaning. Raw writes Entry.Header untouched, for entries the
// other kinds would refuse or normalise.
const (
	Dir Kind = iota + 1
	File
	Symlink
	Hardlink
	Whiteout
	OpaqueWhiteout
	CharDevice
	BlockDevice
	FIFO
	Raw
)

func (k Kind) String() string {
	switch k {
	case Dir:
		return "dir"
	case File:
		return "file"
	case Symlink:
		return "symlink"
	case Hardlink:
		return "hardlink"
	case Whiteout:
		return "whiteout"
	case OpaqueWhiteout:
		return "opaque-whiteout"
	case CharDevice:
		return "char-device"
	case BlockDevice:
		return "block-device"
	case FIFO:
		return "fifo"
	case Raw:
		return "raw"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// The OCI whiteout names (image-spec layer.md, "Whiteouts").
const (
	WhiteoutPrefix = ".wh."
	WhiteoutOpaque = ".wh..wh..opq"
)

// Entry is one tar entry of a layer.
//
// Path is written as given: no cleaning, no stripping of "/" or "..", so
// hostile names survive into the tar. For Whiteout, Path names the file
// being deleted ("etc/motd" becomes "etc/.wh.motd"); for OpaqueWhiteout it
// names the directory ("opq" becomes "opq/.wh..wh..opq").
type Entry struct {
	Kind     Kind
	Path     string
	Data     []byte // File contents; Raw: the body written after Header
	Linkname string // Symlink target, or the archive path a Hardlink names
	// Mode is the permission bits plus setuid (0o4000), setgid (0o2000) and
	// sticky (0o1000), as chmod takes them; it is written as given, with no
	// default for zero.
	Mode         int64
	UID, GID     int
	Xattrs       map[string]string // "user.x" becomes PAX "SCHILY.xattr.user.x"
	Major, Minor int64             // CharDevice, BlockDevice
	Header       *tar.Header       // Raw only
}

// Layer is the entries of one layer, in archive order.
type Layer []Entry

// header turns e into the tar header Blob writes. It refuses only what
// would make a tar that does not say what the entry says; hostile but
// well-formed entries go through Raw or straight through Path.
func (e Entry) header() (*tar.Header, error) {
	if e.Kind == Raw {
		if e.Header == nil {
			return nil, fmt.Errorf("raw entry %q: no header", e.Path)
		}
		return e.Header, nil
	}
	if e.Header != nil {
		return nil, fmt.Errorf("%s entry %q: header is for raw entries only", e.Kind, e.Path)
	}
	h := &tar.Header{
		Name:    e.Path,
		Mode:    e.Mode,
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: epoch(),
	}
	switch e.Kind {
	case Dir:
		h.Typeflag = tar.TypeDir
		// GNU tar and the Docker daemon end directory names with "/";
		// readers that key on the name see what they see in the wild.
		if !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
	case File:
		h.Typeflag = tar.TypeReg
		h.Size = int64(len(e.Data))
	case Symlink:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.Linkname
	case Hardlink:
		h.Typeflag = tar.TypeLink
		h.Linkname = e.Linkname
	case Whiteout, OpaqueWhiteout:
		h.Typeflag = tar.TypeReg
		dir, base := path.Split(strings.TrimSuffix(e.Path, "/"))
		if e.Kind == Whiteout {
			h.Name = dir + WhiteoutPrefix + base
		} else {
			h.Name = strings.TrimSuffix(e.Path, "/") + "/" + WhiteoutOpaque
		}
	case CharDevice, BlockDevice:
		h.Typeflag = tar.TypeChar
		if e.Kind == BlockDevice {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = e.Major, e.Minor
	case FIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil, fmt.Errorf("entry %q: unknown kind %s", e.Path, e.Kind)
	}
	if len(e.Data) > 0 && e.Kind != File {
		return nil, fmt.Errorf("%s entry %q: data is for files only", e.Kind, e.Path)
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		// Only PAX carries xattrs; say so rather than let the writer pick.
		h.Format = tar.FormatPAX
	}
	return h, nil
}

// Tar returns the layer as an uncompressed tar stream.
func (l Layer) Tar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l {
		h, err := e.header()
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if len(e.Data) > 0 {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

// Blob returns the layer as the gzip-compressed tar a registry stores,
// with its diff ID (digest of the uncompressed tar, what a config's
// rootfs.diff_ids lists) and its digest (of the blob itself, what a
// manifest lists), both as "sha256:<hex>".
func (l Layer) Blob() (blob []byte, diffID, digest string, err error) {
	raw, err := l.Tar()
	if err != nil {
		return nil, "", "", err
	}
	var buf bytes.Buffer
	// The zero gzip.Header has no name and no mtime: same bytes every run.
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, "", "", fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", "", fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), Digest(raw), Digest(buf.Bytes()), nil
}

// Digest returns the OCI digest of b, "sha256:<hex>".
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
