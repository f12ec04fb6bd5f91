package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"sandbox/internal/testimage"
)

// checkLayers runs CheckLayer on each layer and CheckStack on the result,
// as the store does for one image.
func checkLayers(t *testing.T, layers []testimage.Layer) ([]*LayerInfo, error) {
	t.Helper()
	var infos []*LayerInfo
	for i, l := range layers {
		raw, err := l.Tar()
		if err != nil {
			t.Fatal(err)
		}
		info, err := CheckLayer(testimage.Digest(raw), bytes.NewReader(raw))
		if err != nil {
			return infos, err
		}
		if info.Digest == "" {
			t.Fatalf("layer %d: no digest recorded", i)
		}
		infos = append(infos, info)
	}
	return infos, CheckStack(infos)
}

// What the store does with each hostile layer, by case: "reject" fails the
// image naming the entry, anything else is the start of the Notice the
// neutralised entry must produce.
var maliciousWant = map[string]string{
	"absolute-path":                  "reject",
	"dotdot-traversal":               "reject",
	"dotdot-in-middle":               "reject",
	"symlink-absolute-in-layer":      "reject",
	"symlink-relative-in-layer":      "reject",
	"symlink-absolute-across-layers": "reject",
	"symlink-relative-across-layers": "reject",
	"hardlink-relative":              "reject",
	"hardlink-absolute":              "reject",
	"char-device-mem":                "character device 1:1 not created",
	"block-device-disk":              "block device 8:0 not created",
	"setuid-root-shell":              "setuid and setgid bit cleared",
	"overlay-opaque-xattr":           "xattr trusted.overlay.opaque not set",
	"overlay-redirect-xattr":         "xattr trusted.overlay.redirect not set",
	"whiteout-dotdot":                "reject",
	"whiteout-traversal":             "reject",
}

func TestCheckMalicious(t *testing.T) {
	cases := testimage.MaliciousLayers()
	if len(cases) != len(maliciousWant) {
		t.Errorf("%d malicious cases, %d expectations: a new case needs a decision here", len(cases), len(maliciousWant))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			want, ok := maliciousWant[c.Name]
			if !ok {
				t.Fatalf("no expectation for %s (class %s)", c.Name, c.Class)
			}
			infos, err := checkLayers(t, c.Layers)
			if want == "reject" {
				var le *LayerError
				if !errors.As(err, &le) {
					t.Fatalf("err = %v, want a *LayerError", err)
				}
				if le.Entry != c.Offending || le.Reason == "" || !strings.HasPrefix(le.Layer, "sha256:") {
					t.Errorf("rejected %+v, want entry %q with a reason and the layer's digest", le, c.Offending)
				}
				t.Logf("%s: %v", c.Name, err)
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want the entry neutralised", err)
			}
			last := infos[len(infos)-1]
			found := false
			for _, n := range last.Notices {
				if n.Entry == c.Offending && strings.HasPrefix(n.What, want) {
					found = true
				}
			}
			if !found {
				t.Errorf("notices %+v, want one for %q starting %q", last.Notices, c.Offending, want)
			}
			if c.Class == testimage.ClassSetuidRoot && (len(last.SetID) != 1 || last.SetID[0] != strings.TrimSuffix(c.Offending, "/")) {
				t.Errorf("SetID = %q, want [%s]", last.SetID, c.Offending)
			}
		})
	}
}

// Ordinary images pass untouched: every kind of entry and whiteout, links
// within the layer, a directory replacing a lower symlink explicitly.
func TestCheckAccepts(t *testing.T) {
	infos, err := checkLayers(t, testimage.MultiLayerLayers())
	if err != nil {
		t.Fatalf("multi-layer fixture: %v", err)
	}
	for _, in := range infos {
		if len(in.Notices) != 0 || len(in.SetID) != 0 {
			t.Errorf("multi-layer fixture: notices %v setid %v, want none", in.Notices, in.SetID)
		}
	}
	file := func(p string) testimage.Entry {
		return testimage.Entry{Kind: testimage.File, Path: p, Data: []byte("x"), Mode: 0o644}
	}
	ok := map[string][]testimage.Layer{
		"leading ./ names": {{{Kind: testimage.Dir, Path: "./", Mode: 0o755}, {Kind: testimage.Dir, Path: "./etc", Mode: 0o755}, file("./etc/x")}},
		"directory replaces a lower symlink": {
			{{Kind: testimage.Symlink, Path: "lib", Linkname: "usr/lib", Mode: 0o777}},
			{{Kind: testimage.Dir, Path: "lib", Mode: 0o755}, file("lib/x")},
		},
		"whiteout removes a lower symlink": {
			{{Kind: testimage.Symlink, Path: "lib", Linkname: "/tmp", Mode: 0o777}},
			{{Kind: testimage.Whiteout, Path: "lib"}},
			{file("lib/x")},
		},
		"symlink replaced by a directory in the same layer": {{
			{Kind: testimage.Symlink, Path: "d", Linkname: "/etc", Mode: 0o777},
			{Kind: testimage.Dir, Path: "d", Mode: 0o755},
			file("d/x"),
		}},
		"setgid directory is kept": {{{Kind: testimage.Dir, Path: "shared", Mode: 0o2775}}},
		"security.capability is kept": {{{Kind: testimage.File, Path: "ping", Mode: 0o755, Data: []byte("x"),
			Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02"}}}},
	}
	for name, layers := range ok {
		t.Run(name, func(t *testing.T) {
			infos, err := checkLayers(t, layers)
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range infos {
				if len(in.Notices) != 0 {
					t.Errorf("notices %v, want none", in.Notices)
				}
			}
		})
	}
}

// Hostile shapes beyond the shared fixtures.
func TestCheckRejectsMore(t *testing.T) {
	raw := func(name string, typ byte, link string, pax map[string]string) testimage.Entry {
		return testimage.Entry{Kind: testimage.Raw, Path: name, Header: &tar.Header{
			Typeflag: typ, Name: name, Linkname: link, Mode: 0o644, PAXRecords: pax, Format: tar.FormatPAX,
		}}
	}
	tests := map[string]struct {
		layers []testimage.Layer
		entry  string
		reason string
	}{
		"user.overlay xattr": {
			[]testimage.Layer{{{Kind: testimage.Dir, Path: "etc", Mode: 0o755, Xattrs: map[string]string{"user.overlay.opaque": "y"}}}},
			"etc/", "user.overlay.opaque",
		},
		"hardlink below a symlink of the same layer": {
			[]testimage.Layer{{
				{Kind: testimage.Symlink, Path: "d", Linkname: "/etc", Mode: 0o777},
				raw("x", tar.TypeLink, "d/shadow", nil),
			}},
			"x", "symlink",
		},
		"hardlink to a name not in the layer": {
			[]testimage.Layer{{raw("x", tar.TypeLink, "etc/shadow", nil)}},
			"x", "not an earlier entry",
		},
		"whiteout below a symlink": {
			[]testimage.Layer{{
				{Kind: testimage.Symlink, Path: "d", Linkname: "/etc", Mode: 0o777},
				raw("d/.wh.passwd", tar.TypeReg, "", nil),
			}},
			"d/.wh.passwd", "symlink",
		},
		"whiteout of dot": {
			[]testimage.Layer{{raw("a/.wh..", tar.TypeReg, "", nil)}},
			"a/.wh..", "whiteout",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := checkLayers(t, tc.layers)
			var le *LayerError
			if !errors.As(err, &le) || le.Entry != tc.entry || !strings.Contains(le.Reason, tc.reason) {
				t.Fatalf("err = %v, want a *LayerError for %q mentioning %q", err, tc.entry, tc.reason)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"etc/passwd", "etc/passwd", false},
		{"./etc/", "etc", false},
		{"./", ".", false},
		{"a//b", "a/b", false},
		{"/etc/x", "", true},
		{"../x", "", true},
		{"a/../../x", "", true},
		{"a/..", "", true},
		{"a/..b", "a/..b", false},
	}
	for _, tc := range tests {
		got, err := cleanName(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
