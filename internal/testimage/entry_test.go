package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"regexp"
	"strings"
	"testing"
)

// tarEntry is a header read back from a layer, with its body.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// readBlob gunzips and untars a layer blob the way a store would, with the
// standard library's reader: what it sees is what a store sees.
func readBlob(t *testing.T, blob []byte) []tarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("tar %s: %v", h.Name, err)
		}
		out = append(out, tarEntry{h, data})
	}
}

func readLayer(t *testing.T, l Layer) []tarEntry {
	t.Helper()
	blob, _, _, err := l.Blob()
	if err != nil {
		t.Fatalf("blob: %v", err)
	}
	return readBlob(t, blob)
}

func TestEntryHeader(t *testing.T) {
	type want struct {
		name, linkname string
		typ            byte
		mode           int64
		uid, gid       int
		size           int64
		major, minor   int64
		data           string
		pax            map[string]string
		format         tar.Format // checked when not FormatUnknown
	}
	tests := []struct {
		name  string
		entry Entry
		want  want
	}{
		{"dir gets a trailing slash", Entry{Kind: Dir, Path: "a/b", Mode: 0o755, UID: 1, GID: 2},
			want{name: "a/b/", typ: tar.TypeDir, mode: 0o755, uid: 1, gid: 2}},
		{"dir keeps one slash", Entry{Kind: Dir, Path: "a/", Mode: 0o2775, GID: 1000},
			want{name: "a/", typ: tar.TypeDir, mode: 0o2775, gid: 1000}},
		{"setuid file", Entry{Kind: File, Path: "bin/x", Data: []byte("hi"), Mode: 0o4755},
			want{name: "bin/x", typ: tar.TypeReg, mode: 0o4755, size: 2, data: "hi"}},
		{"empty file, mode zero", Entry{Kind: File, Path: "z", UID: 4000, GID: 5000},
			want{name: "z", typ: tar.TypeReg, uid: 4000, gid: 5000}},
		{"symlink", Entry{Kind: Symlink, Path: "l", Linkname: "../t", Mode: 0o777},
			want{name: "l", linkname: "../t", typ: tar.TypeSymlink, mode: 0o777}},
		{"hardlink", Entry{Kind: Hardlink, Path: "h", Linkname: "bin/x", Mode: 0o755},
			want{name: "h", linkname: "bin/x", typ: tar.TypeLink, mode: 0o755}},
		{"whiteout", Entry{Kind: Whiteout, Path: "a/b"},
			want{name: "a/.wh.b", typ: tar.TypeReg}},
		{"whiteout at the top", Entry{Kind: Whiteout, Path: "b"},
			want{name: ".wh.b", typ: tar.TypeReg}},
		{"whiteout of a directory named with a slash", Entry{Kind: Whiteout, Path: "a/d/"},
			want{name: "a/.wh.d", typ: tar.TypeReg}},
		{"opaque whiteout", Entry{Kind: OpaqueWhiteout, Path: "a/d"},
			want{name: "a/d/.wh..wh..opq", typ: tar.TypeReg}},
		{"opaque whiteout, not cleaned", Entry{Kind: OpaqueWhiteout, Path: "a/../d/"},
			want{name: "a/../d/.wh..wh..opq", typ: tar.TypeReg}},
		{"char device", Entry{Kind: CharDevice, Path: "dev/null", Major: 1, Minor: 3, Mode: 0o666},
			want{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3}},
		{"block device", Entry{Kind: BlockDevice, Path: "dev/sda", Major: 8, Minor: 0, Mode: 0o660, GID: 6},
			want{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 8}},
		{"fifo", Entry{Kind: FIFO, Path: "run/p", Mode: 0o620},
			want{name: "run/p", typ: tar.TypeFifo, mode: 0o620}},
		{"xattrs as PAX records", Entry{Kind: File, Path: "x", Mode: 0o644,
			Xattrs: map[string]string{"user.a": "1", "security.capability": "\x01\x00"}},
			want{name: "x", typ: tar.TypeReg, mode: 0o644, format: tar.FormatPAX,
				pax: map[string]string{"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\x00"}}},
		{"absolute path kept", Entry{Kind: File, Path: "/etc/evil", Mode: 0o644},
			want{name: "/etc/evil", typ: tar.TypeReg, mode: 0o644}},
		{"dotdot kept", Entry{Kind: File, Path: "../../evil", Mode: 0o644},
			want{name: "../../evil", typ: tar.TypeReg, mode: 0o644}},
		{"raw header as given", Entry{Kind: Raw, Data: []byte("body"), Header: &tar.Header{
			Typeflag: tar.TypeReg, Name: "./odd//name", Mode: 0o7777, Uid: 1 << 20, Size: 4}},
			want{name: "./odd//name", typ: tar.TypeReg, mode: 0o7777, uid: 1 << 20, size: 4, data: "body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readLayer(t, Layer{tt.entry})
			if len(got) != 1 {
				t.Fatalf("got %d entries, want 1", len(got))
			}
			h, w := got[0].hdr, tt.want
			if h.Name != w.name || h.Linkname != w.linkname || h.Typeflag != w.typ {
				t.Errorf("name %q linkname %q type %q, want %q %q %q", h.Name, h.Linkname, h.Typeflag, w.name, w.linkname, w.typ)
			}
			if h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid {
				t.Errorf("mode %#o uid %d gid %d, want %#o %d %d", h.Mode, h.Uid, h.Gid, w.mode, w.uid, w.gid)
			}
			if h.Size != w.size || string(got[0].data) != w.data {
				t.Errorf("size %d data %q, want %d %q", h.Size, got[0].data, w.size, w.data)
			}
			if h.Devmajor != w.major || h.Devminor != w.minor {
				t.Errorf("device %d,%d, want %d,%d", h.Devmajor, h.Devminor, w.major, w.minor)
			}
			if tt.entry.Kind != Raw && !h.ModTime.Equal(epoch()) {
				t.Errorf("mtime %v, want the fixed epoch %v", h.ModTime, epoch())
			}
			xattrs := map[string]string{}
			for k, v := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.") {
					xattrs[k] = v
				}
			}
			if len(w.pax) > 0 || len(xattrs) > 0 {
				if !maps.Equal(xattrs, w.pax) {
					t.Errorf("xattr records %q, want %q", xattrs, w.pax)
				}
			}
			if w.format != tar.FormatUnknown && h.Format&w.format == 0 {
				t.Errorf("format %v, want %v", h.Format, w.format)
			}
		})
	}
}

func TestEntryHeaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		entry   Entry
		wantErr string
	}{
		{"raw without header", Entry{Kind: Raw, Path: "x"}, "no header"},
		{"header on a file", Entry{Kind: File, Path: "x", Header: &tar.Header{}}, "raw entries only"},
		{"data on a dir", Entry{Kind: Dir, Path: "d", Data: []byte("x")}, "files only"},
		{"data on a symlink", Entry{Kind: Symlink, Path: "l", Data: []byte("x")}, "files only"},
		{"zero kind", Entry{Path: "x"}, "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Layer{tt.entry}.Blob()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestLayerBlobDigests(t *testing.T) {
	tests := []struct {
		name  string
		layer Layer
	}{
		{"empty", Layer{}},
		{"one file", Layer{{Kind: File, Path: "f", Data: []byte("x\n"), Mode: 0o644}}},
		{"multi-layer base", MultiLayerLayers()[0]},
		{"multi-layer whiteouts", MultiLayerLayers()[1]},
		{"malicious xattr", maliciousLast("overlay-opaque-xattr")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, diffID, digest, err := tt.layer.Blob()
			if err != nil {
				t.Fatal(err)
			}
			if !digestRE.MatchString(diffID) || !digestRE.MatchString(digest) {
				t.Fatalf("diffID %q digest %q: not sha256:<hex>", diffID, digest)
			}
			if got := sha256hex(blob); digest != "sha256:"+got {
				t.Errorf("digest %s, blob hashes to %s", digest, got)
			}
			zr, err := gzip.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256hex(raw); diffID != "sha256:"+got {
				t.Errorf("diffID %s, uncompressed tar hashes to %s", diffID, got)
			}
			plain, err := tt.layer.Tar()
			if err != nil || !bytes.Equal(plain, raw) {
				t.Errorf("Tar() differs from the blob's contents (err %v)", err)
			}
			again, diffID2, digest2, err := tt.layer.Blob()
			if err != nil || !bytes.Equal(again, blob) || diffID2 != diffID || digest2 != digest {
				t.Errorf("second Blob() differs: not reproducible (err %v)", err)
			}
		})
	}
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// maliciousLast returns the offending layer of the named case; a typo in a
// test table is a bug in the test, hence the panic.
func maliciousLast(name string) Layer {
	for _, m := range MaliciousLayers() {
		if m.Name == name {
			return m.Layers[len(m.Layers)-1]
		}
	}
	panic("no malicious case " + name)
}
