package image

// What containers/storage does by itself with each hostile layer, without
// CheckLayer in front: the test applies every testimage.MaliciousLayers
// case with storage's own PutLayer, inside a user namespace set up as the
// store helper's (this test binary, re-executed by storeclient, plays the
// helper), and pins the outcome in storageAlone. When a containers/storage
// upgrade changes one, this test says which, and whether our own check is
// still the only thing standing in the way.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/storage/pkg/reexec"
	"golang.org/x/sys/unix"

	"sandbox/internal/e2e"
	"sandbox/internal/testimage"
	"sandbox/storeclient"
)

func TestMain(m *testing.M) {
	// containers/storage re-executes /proc/self/exe to apply layers.
	if reexec.Init() {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "--sync-fd=3" {
		os.Exit(aloneMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// aloneResult is what applying one case did.
type aloneResult struct {
	Err string `json:"err,omitempty"` // PutLayer's error for the last layer
	// Offending is how the offending entry looks in the last layer's
	// directory: "absent", "file 4755", "char", "dir xattrs=[...]".
	Offending string   `json:"offending"`
	Escaped   []string `json:"escaped,omitempty"` // files written outside the layer
	// Files are the paths in the last layer's directory.
	Files []string `json:"files,omitempty"`
}

// aloneMain is the helper side: argv is storeclient's, "--sync-fd=3
// --root R --runroot RR [--single-id] CASE".
func aloneMain(args []string) int {
	b := make([]byte, 1)
	if n, _ := os.NewFile(3, "sync").Read(b); n != 1 {
		return 1
	}
	var root, runRoot, name string
	single := false
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--root":
			i++
			root = args[i]
		case "--runroot":
			i++
			runRoot = args[i]
		case "--single-id":
			single = true
		default:
			name = args[i]
		}
	}
	if name == "rmtree" {
		// Cleanup: the store's files belong to subordinate ids.
		if err := os.RemoveAll(filepath.Dir(root)); err != nil {
			json.NewEncoder(os.Stdout).Encode(map[string]any{"error": map[string]string{"kind": "internal", "message": err.Error()}})
			return 1
		}
		fmt.Println("{}")
		return 0
	}
	res, err := applyAlone(root, runRoot, single, name)
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"error": map[string]string{"kind": "internal", "message": err.Error()}})
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func applyAlone(root, runRoot string, single bool, name string) (*aloneResult, error) {
	var c *testimage.Malicious
	for _, m := range testimage.MaliciousLayers() {
		if m.Name == name {
			c = &m
		}
	}
	if c == nil {
		return nil, fmt.Errorf("no case %q", name)
	}
	st, err := Open(Options{Root: root, RunRoot: runRoot, SingleID: single})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	res := &aloneResult{}
	parent, id := "", ""
	for i, l := range c.Layers {
		raw, err := l.Tar()
		if err != nil {
			return nil, err
		}
		layer, _, err := st.s.PutLayer("", parent, nil, "", false, nil, bytes.NewReader(raw))
		if err != nil {
			if i != len(c.Layers)-1 {
				return nil, fmt.Errorf("stage layer %d: %w", i, err)
			}
			res.Err = err.Error()
			break
		}
		parent, id = layer.ID, layer.ID
	}
	res.Offending = "absent"
	if id != "" {
		dir := st.layerDir(id)
		filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
			if rel, _ := filepath.Rel(dir, p); err == nil && rel != "." {
				res.Files = append(res.Files, rel)
			}
			return nil
		})
	}
	if res.Err == "" {
		p := filepath.Join(st.layerDir(id), strings.TrimSuffix(c.Offending, "/"))
		var s unix.Stat_t
		if err := unix.Lstat(p, &s); err == nil {
			res.Offending = describe(p, &s)
		}
	}
	for _, p := range []string{"/tmp/evil", filepath.Join(root, "evil"), filepath.Join(root, "overlay", "evil"), filepath.Join(filepath.Dir(root), "evil")} {
		if _, err := os.Lstat(p); err == nil {
			res.Escaped = append(res.Escaped, p)
		}
	}
	return res, nil
}

func describe(p string, s *unix.Stat_t) string {
	kind := map[uint32]string{unix.S_IFREG: "file", unix.S_IFDIR: "dir", unix.S_IFLNK: "symlink", unix.S_IFCHR: "char", unix.S_IFBLK: "block"}[s.Mode&unix.S_IFMT]
	out := fmt.Sprintf("%s %04o", kind, s.Mode&0o7777)
	buf := make([]byte, 4096)
	if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
		out += " xattrs=" + strings.ReplaceAll(strings.Trim(string(buf[:n]), "\x00"), "\x00", ",")
	}
	return out
}

// storageAlone is what containers/storage v1.59.1 does with each case
// when nothing checks the layer first, in a rootless user namespace:
// "error: WORDS" is a refusal whose message holds WORDS, anything else is
// how the offending entry is left on disk. Nothing is ever written
// outside the layer directory.
var storageAlone = map[string]string{
	// Taken as etc/evil: the leading "/" is dropped, silently.
	"absolute-path": "file 0644 in etc etc/evil",
	// Cleaned to "evil" at the layer's root, silently.
	"dotdot-traversal": "absent, evil",
	"dotdot-in-middle": "absent, etc evil",
	// Refused by accident: the layer is applied in a chroot of its own
	// directory, where /tmp does not exist. With a /tmp in the layer the
	// file would land in the layer's own /tmp.
	"symlink-absolute-in-layer": "error: open /escape/evil: no such file or directory",
	// Taken: in the chroot, ../../.. is the layer's root, and evil is
	// written there, silently.
	"symlink-relative-in-layer": "absent, escape evil",
	// Each layer has its own directory: escape/ is a new directory in the
	// upper layer and hides the symlink below, silently.
	"symlink-absolute-across-layers": "file 0644 in escape escape/evil",
	"symlink-relative-across-layers": "file 0644 in escape escape/evil",
	// Refused by accident of the chroot: no etc/passwd, etc/shadow there.
	"hardlink-relative": "error: no such file or directory",
	"hardlink-absolute": "error: no such file or directory",
	// Skipped in a user namespace; logged at debug level only.
	"char-device-mem":   "absent, dev",
	"block-device-disk": "absent, dev",
	// Kept as it is.
	"setuid-root-shell": "file 6755 in bin bin/evil-su",
	// trusted.* is refused by the kernel in a user namespace; storage
	// logs a warning and goes on.
	"overlay-opaque-xattr":   "dir 0755 in etc",
	"overlay-redirect-xattr": "dir 0755 in data",
	// mknod of "..", which exists: refused, with "file exists".
	"whiteout-dotdot": "error: file exists",
	// Cleaned to a whiteout of "victim" in the layer's root, silently.
	"whiteout-traversal": "absent, victim",
}

func TestStorageAloneOnMaliciousLayers(t *testing.T) {
	_, err := os.Stat("/proc/self/ns/user")
	e2e.RequireX(t, err == nil, "no user namespaces: %v", err)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	name := strconv.Itoa(uid)
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	for _, c := range testimage.MaliciousLayers() {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := storeclient.Config{Bin: exe, Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"),
				User: name, UID: uint32(uid), GID: uint32(gid), PathEnv: os.Getenv("PATH")}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var res aloneResult
			m, err := storeclient.Run(ctx, cfg, &res, c.Name)
			// The store's files belong to subordinate ids: remove them
			// from inside, as the helper.
			t.Cleanup(func() { removeAsHelper(t, cfg, dir) })
			if err != nil {
				t.Fatalf("applying with storage alone: %v", err)
			}
			t.Logf("full map %v: err=%q offending=%q escaped=%v", m.Full, res.Err, res.Offending, res.Escaped)
			if len(res.Escaped) > 0 {
				t.Errorf("storage alone wrote outside the layer: %v", res.Escaped)
			}
			want := storageAlone[c.Name]
			got := res.Offending
			if got == "absent" {
				got += ", " + strings.Join(res.Files, " ")
			} else {
				got += " in " + strings.Join(res.Files, " ")
			}
			if res.Err != "" {
				got = "error: " + res.Err
			}
			if w, ok := strings.CutPrefix(want, "error: "); ok {
				if res.Err == "" || !strings.Contains(res.Err, w) {
					t.Errorf("storage alone: %q, want an error mentioning %q", got, w)
				}
				return
			}
			if got != want {
				t.Errorf("storage alone left %s as %q, want %q", c.Offending, got, want)
			}
		})
	}
}

// removeAsHelper removes the store from inside the store's user
// namespace, through this test binary's helper side.
func removeAsHelper(t *testing.T, cfg storeclient.Config, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := storeclient.Run(ctx, cfg, nil, "rmtree"); err != nil {
		t.Errorf("removing the store: %v", err)
	}
}
