package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// LayerError rejects a layer: Entry (its name in the archive) would write
// outside the layer, through a symlink, or change what the overlay mount
// shows. Nothing of an image with such a layer is committed.
type LayerError struct {
	Layer  string // the layer's digest, when known
	Entry  string
	Reason string
}

func (e *LayerError) Error() string {
	l := e.Layer
	if l == "" {
		l = "layer"
	}
	return fmt.Sprintf("%s: entry %q: %s", l, e.Entry, e.Reason)
}

// Notice is an entry the store took in a neutralised form.
type Notice struct {
	Layer string `json:"layer"`
	Entry string `json:"entry"`
	What  string `json:"what"`
}

func (n Notice) String() string { return fmt.Sprintf("%s: %s: %s", short(n.Layer), n.Entry, n.What) }

// LayerInfo is what CheckLayer learnt about a layer that the layers above
// it, and the store after committing it, need to know.
type LayerInfo struct {
	Digest string
	// Symlinks are the symlinks the layer leaves, by clean path, with
	// their targets.
	Symlinks map[string]string
	// Replaced are paths the layer creates as something other than a
	// symlink: they hide a lower layer's symlink of the same name.
	Replaced []string
	// Removed are the paths its whiteouts delete, Opaque the directories
	// its opaque whiteouts empty.
	Removed, Opaque []string
	// Implicit are directories the layer's entries lie below without the
	// layer making them first, each with the first entry below it: they
	// must come from the layers below, and must not be symlinks there.
	Implicit map[string]string
	// SetID are regular files with the setuid or setgid bit, whose bits
	// the store clears after committing the layer.
	SetID   []string
	Notices []Notice
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	paxXattr       = "SCHILY.xattr."
)

// CheckLayer reads the uncompressed tar stream r of the layer digest to
// its end and returns what it found, or a *LayerError for the first entry
// it refuses. It changes nothing: the store gets the stream as it was, so
// the digests the image names still hold.
//
// Refused: absolute names and names with a ".." component; entries below
// a symlink the same layer made; hard links whose target is absolute,
// has "..", or lies below such a symlink; whiteouts that name no file of
// their own directory (".wh..", ".wh..."); user.overlay.* xattrs, which a
// rootless overlay mount (userxattr) obeys as its own metadata.
// Neutralised, with a Notice: device nodes (not created: a store in a
// user namespace cannot make them, and the runtime provides /dev);
// trusted.* xattrs (not set: the kernel refuses them in a user namespace,
// and trusted.overlay.* would be overlay metadata); setuid and setgid bits
// on regular files (cleared after the commit, see SetID).
func CheckLayer(digest string, r io.Reader) (*LayerInfo, error) {
	info := &LayerInfo{Digest: digest, Symlinks: map[string]string{}, Implicit: map[string]string{}}
	dirs := map[string]bool{} // directories this layer has made
	entries := map[string]bool{}
	reject := func(entry, format string, args ...any) error {
		return &LayerError{Layer: digest, Entry: entry, Reason: fmt.Sprintf(format, args...)}
	}
	notice := func(entry, what string) {
		info.Notices = append(info.Notices, Notice{Layer: digest, Entry: entry, What: what})
	}
	// below checks the parent directories of name (a clean path) and
	// records those the layer did not make.
	below := func(entry, name string) error {
		for q := path.Dir(name); q != "."; q = path.Dir(q) {
			if t, ok := info.Symlinks[q]; ok {
				return reject(entry, "lies below %s, a symlink to %s made earlier in the same layer; a layer may not write through a symlink", q, t)
			}
		}
		for q := path.Dir(name); q != "."; q = path.Dir(q) {
			if dirs[q] {
				break
			}
			if _, ok := info.Implicit[q]; !ok {
				info.Implicit[q] = entry
			}
		}
		return nil
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read tar: %w", short(digest), err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, reject(hdr.Name, "%v", err)
		}
		if name == "." {
			continue // the root itself, "./"
		}
		if err := below(hdr.Name, name); err != nil {
			return nil, err
		}
		for k := range hdr.PAXRecords {
			x, ok := strings.CutPrefix(k, paxXattr)
			if !ok {
				continue
			}
			switch {
			case strings.HasPrefix(x, "user.overlay."):
				return nil, reject(hdr.Name, "carries the xattr %s, which a rootless overlay mount would obey as its own metadata", x)
			case strings.HasPrefix(x, "trusted."):
				notice(hdr.Name, "xattr "+x+" not set (trusted.* cannot be set in a user namespace)")
			}
		}

		dir, base := path.Split(name)
		dir = path.Clean(dir)
		if base == whiteoutOpaque {
			info.Opaque = append(info.Opaque, dir)
			continue
		}
		if target, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
			if target == "" || target == "." || target == ".." {
				return nil, reject(hdr.Name, "a whiteout must name a file in its own directory, this one names %q", target)
			}
			p := path.Join(dir, target)
			info.Removed = append(info.Removed, p)
			delete(info.Symlinks, p)
			delete(dirs, p)
			continue
		}

		switch hdr.Typeflag {
		case tar.TypeLink:
			if strings.HasPrefix(hdr.Linkname, "/") {
				return nil, reject(hdr.Name, "hard link to the absolute path %s; a hard link must name an earlier entry of the same layer", hdr.Linkname)
			}
			target, err := cleanName(hdr.Linkname)
			if err != nil {
				return nil, reject(hdr.Name, "hard link to %s: %v", hdr.Linkname, err)
			}
			if err := below(hdr.Name, target); err != nil {
				return nil, err
			}
			if !entries[target] {
				return nil, reject(hdr.Name, "hard link to %s, which is not an earlier entry of the same layer", hdr.Linkname)
			}
		case tar.TypeChar, tar.TypeBlock:
			what := "character"
			if hdr.Typeflag == tar.TypeBlock {
				what = "block"
			}
			notice(hdr.Name, fmt.Sprintf("%s device %d:%d not created (a store in a user namespace cannot make device nodes; the runtime provides /dev)", what, hdr.Devmajor, hdr.Devminor))
		case tar.TypeReg:
			if hdr.Mode&(0o4000|0o2000) != 0 {
				info.SetID = append(info.SetID, name)
				notice(hdr.Name, fmt.Sprintf("%s bit cleared (mode %04o stored as %04o)", setidWords(hdr.Mode), hdr.Mode&0o7777, hdr.Mode&0o1777))
			}
		}
		entries[name] = true
		if hdr.Typeflag == tar.TypeSymlink {
			info.Symlinks[name] = hdr.Linkname
			delete(dirs, name)
			continue
		}
		delete(info.Symlinks, name)
		info.Replaced = append(info.Replaced, name)
		if hdr.Typeflag == tar.TypeDir {
			dirs[name] = true
		} else {
			delete(dirs, name)
		}
	}
	return info, nil
}

func setidWords(mode int64) string {
	switch {
	case mode&0o4000 != 0 && mode&0o2000 != 0:
		return "setuid and setgid"
	case mode&0o4000 != 0:
		return "setuid"
	}
	return "setgid"
}

// cleanName turns an archive name into a clean relative path, "." for the
// root. Names a compliant writer never produces are errors rather than
// something to repair: an absolute name, or a ".." anywhere, even where
// cleaning would keep it inside.
func cleanName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", errors.New("absolute path; layer entries are relative to the root")
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", errors.New(`".." in the path; an entry may not leave the root`)
		}
	}
	return path.Clean(n), nil
}

// CheckStack checks the layers of one image, bottom first, against each
// other: no layer may place an entry below a directory that the layers
// beneath it leave as a symlink, unless the layer itself first makes that
// directory. With a layer store that flattens layers such an entry is
// written through the symlink, outside the root; with overlay it would
// silently turn the symlink into a directory. It returns a *LayerError
// naming the layer and the entry.
func CheckStack(layers []*LayerInfo) error {
	links := map[string]string{} // symlinks of the merged view so far
	for _, l := range layers {
		implicit := make([]string, 0, len(l.Implicit))
		for d := range l.Implicit {
			implicit = append(implicit, d)
		}
		sort.Strings(implicit)
		for _, d := range implicit {
			if t, ok := links[d]; ok {
				return &LayerError{Layer: l.Digest, Entry: l.Implicit[d],
					Reason: fmt.Sprintf("lies below %s, a symlink to %s in a lower layer; a layer may not write through a symlink", d, t)}
			}
		}
		for _, p := range l.Removed {
			dropUnder(links, p, true)
		}
		for _, p := range l.Opaque {
			dropUnder(links, p, false)
		}
		for _, p := range l.Replaced {
			delete(links, p)
		}
		for p, t := range l.Symlinks {
			links[p] = t
		}
	}
	return nil
}

// dropUnder deletes the entries of m below p, and p itself when self.
func dropUnder(m map[string]string, p string, self bool) {
	if self {
		delete(m, p)
	}
	prefix := p + "/"
	if p == "." {
		prefix = ""
	}
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			delete(m, k)
		}
	}
}

// short is a digest cut to what a person reads: "sha256:0123456789ab".
func short(d string) string {
	if len(d) > 19 && strings.HasPrefix(d, "sha256:") {
		return d[:19]
	}
	return d
}
