package testimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

func TestBusyboxLayer(t *testing.T) {
	bb, err := FindBusybox()
	e2e.RequireX(t, err == nil, "%v", err)
	l, err := BusyboxLayer(bb)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]tarEntry{}
	for _, e := range readLayer(t, l) {
		got[strings.TrimSuffix(e.hdr.Name, "/")] = e
		wantUID := 0
		if e.hdr.Name == "home/ada/" {
			wantUID = 1000
		}
		if e.hdr.Uid != wantUID || e.hdr.Gid != wantUID {
			t.Errorf("%s owned by %d:%d, want %d:%d", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, wantUID, wantUID)
		}
	}
	type want struct {
		typ  byte
		mode int64
		data string // checked when not empty
	}
	wants := map[string]want{
		"bin/busybox":  {tar.TypeReg, 0o755, string(bin)},
		"etc/passwd":   {tar.TypeReg, 0o644, BusyboxPasswd},
		"etc/group":    {tar.TypeReg, 0o644, BusyboxGroup},
		"etc/hostname": {tar.TypeReg, 0o644, BusyboxHostname},
		"tmp":          {tar.TypeDir, 0o1777, ""},
		"root":         {tar.TypeDir, 0o700, ""},
		"home/ada":     {tar.TypeDir, 0o755, ""},
		"dev":          {tar.TypeDir, 0o755, ""},
		"proc":         {tar.TypeDir, 0o755, ""},
		"sys":          {tar.TypeDir, 0o755, ""},
	}
	for p, w := range wants {
		e, ok := got[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		if e.hdr.Typeflag != w.typ || e.hdr.Mode != w.mode || (w.data != "" && string(e.data) != w.data) {
			t.Errorf("%s: type %q mode %#o (%d bytes), want %q %#o (%d bytes)", p, e.hdr.Typeflag, e.hdr.Mode, len(e.data), w.typ, w.mode, len(w.data))
		}
	}
	for _, a := range append(BusyboxApplets(), "sh") {
		e, ok := got["bin/"+a]
		if !ok || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "busybox" {
			t.Errorf("bin/%s: %+v, want a symlink to busybox", a, e.hdr)
		}
	}
	for _, line := range []string{"root:x:0:0:", "ada:x:1000:1000:", "nobody:x:65534:65534:"} {
		if !strings.Contains(BusyboxPasswd, line) {
			t.Errorf("passwd lacks %q", line)
		}
	}
}

func TestBusyboxLayerRejects(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"+strings.Repeat("# not an ELF header\n", 8)), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantErr string
	}{
		{"missing", "/nonexistent/busybox", "no such file"},
		{"not ELF", notELF, "bad magic"},
		{"dynamically linked", dynamicBinary(t), "dynamically linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e2e.RequireX(t, tt.path != "", "no dynamically linked binary among /bin/sh, /bin/ls, /usr/bin/env")
			_, err := BusyboxLayer(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// dynamicBinary returns a dynamically linked program of this machine, or
// "" if it has none (a fully static system).
func dynamicBinary(t *testing.T) string {
	for _, p := range []string{"/bin/sh", "/bin/ls", "/usr/bin/env"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dyn := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if dyn {
			return p
		}
	}
	return ""
}

// node is one path of a merged tree in mergeLayers.
type node struct {
	ExpectedFile
	inode int // paths sharing an inode are hardlinks of each other
}

// mergeLayers applies layers bottom first to an empty tree the way
// image-spec layer.md says (whiteouts hide only lower layers, whatever
// their order in the archive), reading each layer back from its blob. It
// is a reference for the fixture's own data, not a store: it trusts its
// input.
func mergeLayers(t *testing.T, layers []Layer) map[string]node {
	tree := map[string]node{}
	removeTree := func(p string, keepRoot bool) {
		for q := range tree {
			if strings.HasPrefix(q, p+"/") || (q == p && !keepRoot) {
				delete(tree, q)
			}
		}
	}
	inodes := 0
	for _, l := range layers {
		entries := readLayer(t, l)
		for _, e := range entries {
			dir, base := path.Split(e.hdr.Name)
			dir = strings.TrimSuffix(dir, "/")
			switch {
			case base == WhiteoutOpaque:
				removeTree(dir, true)
			case strings.HasPrefix(base, WhiteoutPrefix):
				removeTree(path.Join(dir, strings.TrimPrefix(base, WhiteoutPrefix)), false)
			}
		}
		for _, e := range entries {
			h := e.hdr
			name := strings.TrimSuffix(h.Name, "/")
			if strings.HasPrefix(path.Base(name), WhiteoutPrefix) {
				continue
			}
			n := node{ExpectedFile: ExpectedFile{Path: name, UID: h.Uid, GID: h.Gid, Mode: h.Mode}}
			inodes++
			n.inode = inodes
			switch h.Typeflag {
			case tar.TypeDir:
				n.Kind = Dir
			case tar.TypeReg:
				n.Kind, n.Data = File, e.data
			case tar.TypeSymlink:
				n.Kind, n.Linkname = Symlink, h.Linkname
			case tar.TypeFifo:
				n.Kind = FIFO
			case tar.TypeLink:
				target, ok := tree[h.Linkname]
				if !ok {
					t.Fatalf("hardlink %s to missing %s", name, h.Linkname)
				}
				// A hardlink shares the target's inode, and so its owner,
				// mode and contents; the header's own are ignored.
				n = target
				n.Path = name
			default:
				t.Fatalf("%s: type %q not expected in the multi-layer fixture", name, h.Typeflag)
			}
			if old, ok := tree[name]; ok && old.Kind == Dir && n.Kind != Dir {
				removeTree(name, false)
			}
			tree[name] = n
		}
	}
	return tree
}

func TestMultiLayerExpect(t *testing.T) {
	expect := MultiLayerExpect()
	if !slices.IsSortedFunc(expect, func(a, b ExpectedFile) int { return strings.Compare(a.Path, b.Path) }) {
		t.Error("MultiLayerExpect is not sorted by path")
	}
	if len(MultiLayerLayers()) < 3 {
		t.Errorf("%d layers, want at least 3", len(MultiLayerLayers()))
	}
	tree := mergeLayers(t, MultiLayerLayers())
	seen := map[string]bool{}
	for _, w := range expect {
		if seen[w.Path] {
			t.Errorf("%s listed twice", w.Path)
		}
		seen[w.Path] = true
		got, ok := tree[w.Path]
		if w.Absent {
			if ok {
				t.Errorf("%s: present (%v), want absent", w.Path, got.Kind)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: absent, want %v", w.Path, w.Kind)
			continue
		}
		kind := got.Kind
		if w.Kind == Hardlink {
			other, ok := tree[w.Linkname]
			if !ok || other.inode != got.inode {
				t.Errorf("%s: not the same inode as %s", w.Path, w.Linkname)
			}
			kind, got.Linkname = Hardlink, w.Linkname
		}
		if kind != w.Kind || got.UID != w.UID || got.GID != w.GID || got.Mode != w.Mode ||
			!bytes.Equal(got.Data, w.Data) || got.Linkname != w.Linkname {
			t.Errorf("%s: merged %v %d:%d %#o %q -> %q\n  want %v %d:%d %#o %q -> %q", w.Path,
				kind, got.UID, got.GID, got.Mode, got.Data, got.Linkname,
				w.Kind, w.UID, w.GID, w.Mode, w.Data, w.Linkname)
		}
	}
	for p := range tree {
		if !seen[p] {
			t.Errorf("%s: in the merged tree but not in MultiLayerExpect", p)
		}
	}

	// What the fixture promises to exercise is there.
	var uids, gids []int
	var setgidDir, private0700, fifo, hardlink, absLink, relLink bool
	for _, w := range expect {
		uids, gids = append(uids, w.UID), append(gids, w.GID)
		setgidDir = setgidDir || (w.Kind == Dir && w.Mode&0o2000 != 0)
		private0700 = private0700 || (w.Kind == Dir && w.Mode == 0o700 && w.UID != 0)
		fifo = fifo || w.Kind == FIFO
		hardlink = hardlink || w.Kind == Hardlink
		absLink = absLink || (w.Kind == Symlink && path.IsAbs(w.Linkname))
		relLink = relLink || (w.Kind == Symlink && w.Linkname != "" && !path.IsAbs(w.Linkname))
	}
	for _, id := range []int{0, 1000, 33, 65534, 4000} {
		if !slices.Contains(uids, id) {
			t.Errorf("no file owned by uid %d", id)
		}
	}
	for _, id := range []int{0, 1000, 33, 65534, 5000} {
		if !slices.Contains(gids, id) {
			t.Errorf("no file owned by gid %d", id)
		}
	}
	if !setgidDir || !private0700 || !fifo || !hardlink || !absLink || !relLink {
		t.Errorf("setgid dir %v, 0700 non-root dir %v, fifo %v, hardlink %v, absolute symlink %v, relative symlink %v: want all",
			setgidDir, private0700, fifo, hardlink, absLink, relLink)
	}
}

// escapes reports whether p, taken relative to the root, leaves it.
func escapes(p string) bool {
	c := path.Clean(p)
	return path.IsAbs(p) || c == ".." || strings.HasPrefix(c, "../")
}

func TestMaliciousLayers(t *testing.T) {
	// Each class's check says what makes the offending header hostile;
	// before is every header of the earlier layers and of the last layer
	// up to the offending one.
	checks := map[string]func(h *tar.Header, before []*tar.Header, sameLayer []*tar.Header) bool{
		ClassAbsolutePath: func(h *tar.Header, _, _ []*tar.Header) bool { return path.IsAbs(h.Name) },
		ClassDotDot: func(h *tar.Header, _, _ []*tar.Header) bool {
			return !path.IsAbs(h.Name) && escapes(h.Name)
		},
		ClassSymlinkInLayer: func(h *tar.Header, _, same []*tar.Header) bool { return underEscapingLink(h, same) },
		ClassSymlinkAcross: func(h *tar.Header, before, same []*tar.Header) bool {
			return underEscapingLink(h, before[:len(before)-len(same)]) && !underEscapingLink(h, same)
		},
		ClassHardlinkOutside: func(h *tar.Header, _, _ []*tar.Header) bool {
			return h.Typeflag == tar.TypeLink && escapes(h.Linkname)
		},
		ClassDeviceNode: func(h *tar.Header, _, _ []*tar.Header) bool {
			return h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock
		},
		ClassSetuidRoot: func(h *tar.Header, _, _ []*tar.Header) bool {
			return h.Typeflag == tar.TypeReg && h.Uid == 0 && h.Mode&0o4000 != 0 && h.Mode&0o111 != 0
		},
		ClassOverlayXattr: func(h *tar.Header, _, _ []*tar.Header) bool {
			for k := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.trusted.overlay.") {
					return true
				}
			}
			return false
		},
		ClassWhiteoutEscape: func(h *tar.Header, _, _ []*tar.Header) bool {
			dir, base := path.Split(h.Name)
			return strings.HasPrefix(base, WhiteoutPrefix) && escapes(dir+strings.TrimPrefix(base, WhiteoutPrefix))
		},
	}
	classes := map[string]int{}
	names := map[string]bool{}
	for _, m := range MaliciousLayers() {
		t.Run(m.Name, func(t *testing.T) {
			if names[m.Name] {
				t.Errorf("name %q used twice", m.Name)
			}
			names[m.Name] = true
			check, ok := checks[m.Class]
			if !ok {
				t.Fatalf("unknown class %q", m.Class)
			}
			classes[m.Class]++
			var before []*tar.Header
			for i, l := range m.Layers {
				last := i == len(m.Layers)-1
				var same []*tar.Header
				found := false
				for _, e := range readLayer(t, l) {
					if last && e.hdr.Name == m.Offending {
						found = true
						if !check(e.hdr, before, same) {
							t.Errorf("offending header %+v is not a %s attack", e.hdr, m.Class)
						}
						break
					}
					before, same = append(before, e.hdr), append(same, e.hdr)
				}
				if last && !found {
					t.Errorf("last layer has no entry named %q", m.Offending)
				}
			}
		})
	}
	for c := range checks {
		if classes[c] == 0 {
			t.Errorf("class %s has no case", c)
		}
	}
}

// underEscapingLink reports whether h's name lies beneath one of links'
// symlinks whose target leaves the root.
func underEscapingLink(h *tar.Header, links []*tar.Header) bool {
	for _, l := range links {
		if l.Typeflag != tar.TypeSymlink || !strings.HasPrefix(h.Name, l.Name+"/") {
			continue
		}
		// An absolute target stays inside only if resolved in the root,
		// which is exactly what a naive extractor does not do.
		if path.IsAbs(l.Linkname) || escapes(path.Join(path.Dir(l.Name), l.Linkname)) {
			return true
		}
	}
	return false
}
