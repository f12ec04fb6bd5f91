package testimage

import "archive/tar"

// Malicious is a hostile layer stack: an image store must reject it or
// neutralise the offending entry, and must never write, delete or create
// anything outside the image root because of it.
type Malicious struct {
	Name  string // unique, after the attack: "hardlink-absolute"
	Class string // one of the Class* constants; a class may have variants
	// Layers, bottom first. Only the last layer holds the offending
	// entry; earlier layers set the stage (a symlink, a victim file).
	Layers []Layer
	// Offending is the tar name of the entry that carries the attack, as
	// it appears in the last layer's archive.
	Offending string
}

// The classes of MaliciousLayers. A store's test can treat a class as one
// rule ("no entry is written through a symlink") and every case in it as
// one way to break that rule.
const (
	ClassAbsolutePath    = "absolute-path"    // entry named /etc/evil
	ClassDotDot          = "dotdot-traversal" // entry named ../../evil
	ClassSymlinkInLayer  = "symlink-in-layer" // symlink, then a file beneath it, same layer
	ClassSymlinkAcross   = "symlink-across"   // symlink in layer 1, file beneath it in layer 2
	ClassHardlinkOutside = "hardlink-outside" // hardlink to a path outside the layer
	ClassDeviceNode      = "device-node"      // char or block device
	ClassSetuidRoot      = "setuid-root"      // setuid executable owned by root
	ClassOverlayXattr    = "overlay-xattr"    // trusted.overlay.* xattr
	ClassWhiteoutEscape  = "whiteout-escape"  // whiteout whose target leaves the root
)

const (
	evilData   = "written by a malicious layer\n"
	evilScript = "#!/bin/sh\nexec /bin/sh\n"
	victimData = "victim of a malicious whiteout\n"
)

// MaliciousLayers returns one case per attack, grouped by Class. These are
// the classic image-extraction escapes: Docker's CVE-2014-6407 (symlinks
// and hardlinks in an image archive) and CVE-2014-9356 (absolute symlink
// targets) among them. The device, setuid and xattr cases escape nothing
// by themselves; they matter because a rootless store that copied them
// faithfully would hand the container a device node, a setuid binary, or
// overlayfs metadata that a kernel overlay mount would obey.
func MaliciousLayers() []Malicious {
	file := func(p string) Entry {
		return Entry{Kind: File, Path: p, Data: []byte(evilData), Mode: 0o644}
	}
	return []Malicious{
		{
			Name: "absolute-path", Class: ClassAbsolutePath, Offending: "/etc/evil",
			Layers: []Layer{{file("/etc/evil")}},
		},
		{
			Name: "dotdot-traversal", Class: ClassDotDot, Offending: "../../evil",
			Layers: []Layer{{file("../../evil")}},
		},
		{
			// No leading "..": a prefix check passes it, cleaning does not.
			Name: "dotdot-in-middle", Class: ClassDotDot, Offending: "etc/../../../evil",
			Layers: []Layer{{{Kind: Dir, Path: "etc", Mode: 0o755}, file("etc/../../../evil")}},
		},
		{
			Name: "symlink-absolute-in-layer", Class: ClassSymlinkInLayer, Offending: "escape/evil",
			Layers: []Layer{{
				{Kind: Symlink, Path: "escape", Linkname: "/tmp", Mode: 0o777},
				file("escape/evil"),
			}},
		},
		{
			Name: "symlink-relative-in-layer", Class: ClassSymlinkInLayer, Offending: "escape/evil",
			Layers: []Layer{{
				{Kind: Symlink, Path: "escape", Linkname: "../../..", Mode: 0o777},
				file("escape/evil"),
			}},
		},
		{
			Name: "symlink-absolute-across-layers", Class: ClassSymlinkAcross, Offending: "escape/evil",
			Layers: []Layer{
				{{Kind: Symlink, Path: "escape", Linkname: "/tmp", Mode: 0o777}},
				{file("escape/evil")},
			},
		},
		{
			Name: "symlink-relative-across-layers", Class: ClassSymlinkAcross, Offending: "escape/evil",
			Layers: []Layer{
				{{Kind: Symlink, Path: "escape", Linkname: "../../..", Mode: 0o777}},
				{file("escape/evil")},
			},
		},
		{
			Name: "hardlink-relative", Class: ClassHardlinkOutside, Offending: "passwd-link",
			Layers: []Layer{{{Kind: Hardlink, Path: "passwd-link", Linkname: "../../etc/passwd", Mode: 0o644}}},
		},
		{
			Name: "hardlink-absolute", Class: ClassHardlinkOutside, Offending: "shadow-link",
			Layers: []Layer{{{Kind: Hardlink, Path: "shadow-link", Linkname: "/etc/shadow", Mode: 0o640}}},
		},
		{
			// /dev/mem: 1,1 on every Linux (Documentation/admin-guide/devices.txt).
			Name: "char-device-mem", Class: ClassDeviceNode, Offending: "dev/evil-mem",
			Layers: []Layer{{
				{Kind: Dir, Path: "dev", Mode: 0o755},
				{Kind: CharDevice, Path: "dev/evil-mem", Major: 1, Minor: 1, Mode: 0o666},
			}},
		},
		{
			// The first SCSI disk, 8,0.
			Name: "block-device-disk", Class: ClassDeviceNode, Offending: "dev/evil-sda",
			Layers: []Layer{{
				{Kind: Dir, Path: "dev", Mode: 0o755},
				{Kind: BlockDevice, Path: "dev/evil-sda", Major: 8, Minor: 0, Mode: 0o666},
			}},
		},
		{
			Name: "setuid-root-shell", Class: ClassSetuidRoot, Offending: "bin/evil-su",
			Layers: []Layer{{
				{Kind: Dir, Path: "bin", Mode: 0o755},
				{Kind: File, Path: "bin/evil-su", Data: []byte(evilScript), Mode: 0o6755},
			}},
		},
		{
			// On an overlay lower layer, opaque=y hides whatever lies
			// below the directory.
			Name: "overlay-opaque-xattr", Class: ClassOverlayXattr, Offending: "etc/",
			Layers: []Layer{{
				{Kind: Dir, Path: "etc", Mode: 0o755, Xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
			}},
		},
		{
			// With redirect_dir on, overlayfs follows redirect to another
			// path of the lower layer: a rename the store never did.
			Name: "overlay-redirect-xattr", Class: ClassOverlayXattr, Offending: "data/",
			Layers: []Layer{{
				{Kind: Dir, Path: "data", Mode: 0o755, Xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}},
			}},
		},
		{
			// ".wh." + "..": a store that removes filepath.Join(root, "..")
			// deletes the directory holding the root.
			Name: "whiteout-dotdot", Class: ClassWhiteoutEscape, Offending: ".wh...",
			Layers: []Layer{
				{{Kind: File, Path: "victim", Data: []byte(victimData), Mode: 0o644}},
				{raw(".wh...", tar.TypeReg, 0o644)},
			},
		},
		{
			Name: "whiteout-traversal", Class: ClassWhiteoutEscape, Offending: "../../.wh.victim",
			Layers: []Layer{
				{{Kind: File, Path: "victim", Data: []byte(victimData), Mode: 0o644}},
				{raw("../../.wh.victim", tar.TypeReg, 0o644)},
			},
		},
	}
}

// raw returns a Raw entry with an empty body and the fixed mtime.
func raw(name string, typ byte, mode int64) Entry {
	return Entry{Kind: Raw, Path: name, Header: &tar.Header{
		Typeflag: typ, Name: name, Mode: mode, ModTime: epoch(),
	}}
}
