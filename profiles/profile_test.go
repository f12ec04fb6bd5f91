package profiles

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Profile
		wantErr string // substring of the DecodeError's text; empty: no error
	}{
		{
			name: "every key",
			in: `description = "d"
hostname = "h"
system-dirs = ["/usr"]
bind-workdir = true
volume = ["/srv:/srv:ro"]
tmpfs = ["/tmp"]
env-pass = ["LC_*"]
env = ["A=1"]
`,
			want: &Profile{Name: "every key", Description: "d", Hostname: "h", SystemDirs: []string{"/usr"}, BindWorkdir: true,
				Volume: []string{"/srv:/srv:ro"}, Tmpfs: []string{"/tmp"}, EnvPass: []string{"LC_*"}, Env: []string{"A=1"}},
		},
		{name: "empty", in: "", want: &Profile{Name: "empty"}},
		{name: "unknown key", in: "hostname = \"h\"\nvolumes = [\"/a\"]\n", wantErr: "volumes"},
		{name: "two unknown keys", in: "a = 1\nb = 2\n", wantErr: "unknown key"},
		{name: "table for a list", in: "[env-pass]\nx = 1\n", wantErr: "profile table for a list: "},
		{name: "wrong type", in: "bind-workdir = \"yes\"\n", wantErr: "profile wrong type: "},
		{name: "not toml", in: "hostname = \n", wantErr: "profile not toml: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode(tc.name, []byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !reflect.DeepEqual(p, tc.want) {
					t.Errorf("Decode = %+v, want %+v", p, tc.want)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, %v; want *DecodeError", p, err)
			}
			if de.Name != tc.name {
				t.Errorf("DecodeError.Name = %q, want %q", de.Name, tc.name)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Decode error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadDefault(t *testing.T) {
	p, err := Load("default")
	if err != nil {
		t.Fatalf("the built-in default profile does not load: %v", err)
	}
	if p.Name != "default" || p.Hostname != "sandbox" || !p.BindWorkdir {
		t.Errorf("default profile = %+v, want name default, hostname sandbox, bind-workdir", p)
	}
	for _, d := range []string{"/usr", "/bin", "/lib64", "/etc"} {
		if !contains(p.SystemDirs, d) {
			t.Errorf("default system-dirs %v lack %s", p.SystemDirs, d)
		}
	}
	for _, v := range []string{"PATH", "HOME", "TERM", "LC_*"} {
		if !contains(p.EnvPass, v) {
			t.Errorf("default env-pass %v lacks %s", p.EnvPass, v)
		}
	}
	if !contains(p.Tmpfs, "/tmp") {
		t.Errorf("default tmpfs %v lacks /tmp", p.Tmpfs)
	}
}

func TestLoadUnknown(t *testing.T) {
	_, err := Load("nope")
	var ue *UnknownError
	if !errors.As(err, &ue) {
		t.Fatalf("Load(nope) = %v, want *UnknownError", err)
	}
	if ue.Name != "nope" || !reflect.DeepEqual(ue.Available, Names()) {
		t.Errorf("UnknownError = %+v, want name nope and available %v", ue, Names())
	}
	if !contains(Names(), "default") {
		t.Errorf("Names() = %v, want it to list default", Names())
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Load serves the profiles decoded ahead (zprofiles.go); they must be what
// the TOML decodes to, and every call gets a copy of its own.
func TestDecodedAheadMatchesTOML(t *testing.T) {
	for _, name := range Names() {
		want, err := DecodeBuiltin(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("profile %s decoded ahead differs from its TOML; run go generate ./profiles\n got %+v\nwant %+v", name, got, want)
		}
		got.EnvPass[0] = "changed"
		if again, _ := Load(name); again.EnvPass[0] == "changed" {
			t.Errorf("profile %s: Load returns shared values", name)
		}
	}
}
