package testimage

// ExpectedFile is one path of an image's merged root filesystem, as a
// store must present it after applying every layer.
type ExpectedFile struct {
	Path string // relative to the root, no leading "/"
	// Kind is Dir, File, Symlink, FIFO, or Hardlink: a regular file that
	// is the same inode as the file at Linkname.
	Kind     Kind
	UID, GID int
	Mode     int64 // permission and special bits, as in Entry.Mode
	Data     []byte
	Linkname string // Symlink target, or the path a Hardlink shares its inode with
	Absent   bool   // the path must not exist; only Path is meaningful
}

// MultiLayerLayers returns three layers, bottom first, built so that a
// store gets every part of layer application wrong visibly: ownership by
// several ids, special mode bits, links, and each kind of whiteout.
//
// Layer 1 lays out the tree. Layer 2 deletes old/remove-me (file
// whiteout), makes opq opaque (opq/a and opq/sub/b vanish although layer 2
// recreates opq/sub) and adds opq/new, opq/sub/c and data/transient.
// Layer 3 replaces etc/motd (new contents, mode 0640, group 33), deletes
// data/transient (added by layer 2) and deletes the directory gone with
// everything in it.
//
// The merged view is MultiLayerExpect, in full: every path listed without
// Absent exists with exactly that kind, owner, mode and contents, no other
// path exists, and the paths marked Absent (the deleted files and the
// whiteout markers themselves) do not exist:
//
//	bin/                dir       0755   0:0
//	bin/tool            file      0755   0:0          "#!/bin/sh\necho tool\n"
//	bin/tool-hard       hardlink  0755   0:0          same inode as bin/tool
//	bin/tool-rel        symlink   -> tool
//	data/               dir       0750   4000:5000
//	data/high-ids       file      0640   4000:5000    "uid 4000 gid 5000\n"
//	etc/                dir       0755   0:0
//	etc/motd            file      0640   0:33         "motd from layer 3\n"
//	etc/motd-abs        symlink   -> /etc/motd
//	home/               dir       0755   0:0
//	home/ada/           dir       0755   1000:1000
//	home/ada/notes      file      0640   1000:1000    "ada's notes\n"
//	old/                dir       0755   0:0
//	old/keep            file      0644   0:0          "kept\n"
//	opq/                dir       0750   0:0          mode from layer 2
//	opq/new             file      0644   0:0          "from layer 2\n"
//	opq/sub/            dir       0755   0:0
//	opq/sub/c           file      0644   0:0          "from layer 2\n"
//	private/            dir       0700   1000:1000
//	private/secret      file      0600   1000:1000    "only ada\n"
//	run/                dir       0755   0:0
//	run/pipe            fifo      0660   1000:1000
//	shared/             dir       02775  0:1000       setgid
//	shared/team         file      0664   1000:1000    "group 1000\n"
//	srv/                dir       0755   0:0
//	srv/www/            dir       0755   33:33
//	srv/www/index.html  file      0644   33:33        "<h1>www-data</h1>\n"
//	var/                dir       0755   0:0
//	var/nobody          file      0644   65534:65534  "owned by nobody\n"
//
// absent: old/remove-me, opq/a, opq/sub/b, data/transient, gone,
// gone/file, and the markers old/.wh.remove-me, opq/.wh..wh..opq,
// data/.wh.transient, .wh.gone.
func MultiLayerLayers() []Layer {
	return []Layer{
		{
			{Kind: Dir, Path: "bin", Mode: 0o755},
			{Kind: File, Path: "bin/tool", Data: []byte(toolScript), Mode: 0o755},
			{Kind: Hardlink, Path: "bin/tool-hard", Linkname: "bin/tool", Mode: 0o755},
			{Kind: Symlink, Path: "bin/tool-rel", Linkname: "tool", Mode: 0o777},
			{Kind: Dir, Path: "data", Mode: 0o750, UID: 4000, GID: 5000},
			{Kind: File, Path: "data/high-ids", Data: []byte("uid 4000 gid 5000\n"), Mode: 0o640, UID: 4000, GID: 5000},
			{Kind: Dir, Path: "etc", Mode: 0o755},
			{Kind: File, Path: "etc/motd", Data: []byte("motd from layer 1\n"), Mode: 0o644},
			{Kind: Symlink, Path: "etc/motd-abs", Linkname: "/etc/motd", Mode: 0o777},
			{Kind: Dir, Path: "gone", Mode: 0o755},
			{Kind: File, Path: "gone/file", Data: []byte("deleted with its directory by layer 3\n"), Mode: 0o644},
			{Kind: Dir, Path: "home", Mode: 0o755},
			{Kind: Dir, Path: "home/ada", Mode: 0o755, UID: 1000, GID: 1000},
			{Kind: File, Path: "home/ada/notes", Data: []byte("ada's notes\n"), Mode: 0o640, UID: 1000, GID: 1000},
			{Kind: Dir, Path: "old", Mode: 0o755},
			{Kind: File, Path: "old/keep", Data: []byte("kept\n"), Mode: 0o644},
			{Kind: File, Path: "old/remove-me", Data: []byte("deleted by layer 2\n"), Mode: 0o644},
			{Kind: Dir, Path: "opq", Mode: 0o755},
			{Kind: File, Path: "opq/a", Data: []byte("hidden by layer 2's opaque whiteout\n"), Mode: 0o644},
			{Kind: Dir, Path: "opq/sub", Mode: 0o755},
			{Kind: File, Path: "opq/sub/b", Data: []byte("hidden too, though layer 2 recreates opq/sub\n"), Mode: 0o644},
			{Kind: Dir, Path: "private", Mode: 0o700, UID: 1000, GID: 1000},
			{Kind: File, Path: "private/secret", Data: []byte("only ada\n"), Mode: 0o600, UID: 1000, GID: 1000},
			{Kind: Dir, Path: "run", Mode: 0o755},
			{Kind: FIFO, Path: "run/pipe", Mode: 0o660, UID: 1000, GID: 1000},
			{Kind: Dir, Path: "shared", Mode: 0o2775, GID: 1000},
			{Kind: File, Path: "shared/team", Data: []byte("group 1000\n"), Mode: 0o664, UID: 1000, GID: 1000},
			{Kind: Dir, Path: "srv", Mode: 0o755},
			{Kind: Dir, Path: "srv/www", Mode: 0o755, UID: 33, GID: 33},
			{Kind: File, Path: "srv/www/index.html", Data: []byte("<h1>www-data</h1>\n"), Mode: 0o644, UID: 33, GID: 33},
			{Kind: Dir, Path: "var", Mode: 0o755},
			{Kind: File, Path: "var/nobody", Data: []byte("owned by nobody\n"), Mode: 0o644, UID: 65534, GID: 65534},
		},
		{
			// Parent directories are repeated, as the Docker daemon and
			// buildah write them, so a store meets an existing directory.
			{Kind: Dir, Path: "data", Mode: 0o750, UID: 4000, GID: 5000},
			{Kind: File, Path: "data/transient", Data: []byte("added by layer 2, deleted by layer 3\n"), Mode: 0o644, UID: 4000, GID: 5000},
			{Kind: Dir, Path: "old", Mode: 0o755},
			{Kind: Whiteout, Path: "old/remove-me"},
			// The marker comes right after its directory, before the new
			// contents, as image-spec layer.md's examples order it.
			{Kind: Dir, Path: "opq", Mode: 0o750},
			{Kind: OpaqueWhiteout, Path: "opq"},
			{Kind: File, Path: "opq/new", Data: []byte("from layer 2\n"), Mode: 0o644},
			{Kind: Dir, Path: "opq/sub", Mode: 0o755},
			{Kind: File, Path: "opq/sub/c", Data: []byte("from layer 2\n"), Mode: 0o644},
		},
		{
			{Kind: Whiteout, Path: "data/transient"},
			{Kind: Dir, Path: "etc", Mode: 0o755},
			{Kind: File, Path: "etc/motd", Data: []byte("motd from layer 3\n"), Mode: 0o640, GID: 33},
			{Kind: Whiteout, Path: "gone"},
		},
	}
}

const toolScript = "#!/bin/sh\necho tool\n"

// MultiLayerExpect returns the merged view of MultiLayerLayers, complete
// and sorted by path; see MultiLayerLayers for the same as a table.
func MultiLayerExpect() []ExpectedFile {
	return []ExpectedFile{
		{Path: ".wh.gone", Absent: true},
		{Path: "bin", Kind: Dir, Mode: 0o755},
		{Path: "bin/tool", Kind: File, Mode: 0o755, Data: []byte(toolScript)},
		{Path: "bin/tool-hard", Kind: Hardlink, Mode: 0o755, Data: []byte(toolScript), Linkname: "bin/tool"},
		{Path: "bin/tool-rel", Kind: Symlink, Mode: 0o777, Linkname: "tool"},
		{Path: "data", Kind: Dir, Mode: 0o750, UID: 4000, GID: 5000},
		{Path: "data/.wh.transient", Absent: true},
		{Path: "data/high-ids", Kind: File, Mode: 0o640, UID: 4000, GID: 5000, Data: []byte("uid 4000 gid 5000\n")},
		{Path: "data/transient", Absent: true},
		{Path: "etc", Kind: Dir, Mode: 0o755},
		{Path: "etc/motd", Kind: File, Mode: 0o640, GID: 33, Data: []byte("motd from layer 3\n")},
		{Path: "etc/motd-abs", Kind: Symlink, Mode: 0o777, Linkname: "/etc/motd"},
		{Path: "gone", Absent: true},
		{Path: "gone/file", Absent: true},
		{Path: "home", Kind: Dir, Mode: 0o755},
		{Path: "home/ada", Kind: Dir, Mode: 0o755, UID: 1000, GID: 1000},
		{Path: "home/ada/notes", Kind: File, Mode: 0o640, UID: 1000, GID: 1000, Data: []byte("ada's notes\n")},
		{Path: "old", Kind: Dir, Mode: 0o755},
		{Path: "old/.wh.remove-me", Absent: true},
		{Path: "old/keep", Kind: File, Mode: 0o644, Data: []byte("kept\n")},
		{Path: "old/remove-me", Absent: true},
		{Path: "opq", Kind: Dir, Mode: 0o750},
		{Path: "opq/.wh..wh..opq", Absent: true},
		{Path: "opq/a", Absent: true},
		{Path: "opq/new", Kind: File, Mode: 0o644, Data: []byte("from layer 2\n")},
		{Path: "opq/sub", Kind: Dir, Mode: 0o755},
		{Path: "opq/sub/b", Absent: true},
		{Path: "opq/sub/c", Kind: File, Mode: 0o644, Data: []byte("from layer 2\n")},
		{Path: "private", Kind: Dir, Mode: 0o700, UID: 1000, GID: 1000},
		{Path: "private/secret", Kind: File, Mode: 0o600, UID: 1000, GID: 1000, Data: []byte("only ada\n")},
		{Path: "run", Kind: Dir, Mode: 0o755},
		{Path: "run/pipe", Kind: FIFO, Mode: 0o660, UID: 1000, GID: 1000},
		{Path: "shared", Kind: Dir, Mode: 0o2775, GID: 1000},
		{Path: "shared/team", Kind: File, Mode: 0o664, UID: 1000, GID: 1000, Data: []byte("group 1000\n")},
		{Path: "srv", Kind: Dir, Mode: 0o755},
		{Path: "srv/www", Kind: Dir, Mode: 0o755, UID: 33, GID: 33},
		{Path: "srv/www/index.html", Kind: File, Mode: 0o644, UID: 33, GID: 33, Data: []byte("<h1>www-data</h1>\n")},
		{Path: "var", Kind: Dir, Mode: 0o755},
		{Path: "var/nobody", Kind: File, Mode: 0o644, UID: 65534, GID: 65534, Data: []byte("owned by nobody\n")},
	}
}
