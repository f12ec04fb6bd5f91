package image

import (
	"errors"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	tests := []struct {
		ref        string
		registries []string
		want       []string
		err        string // "ref" for a *RefError, "empty" for *NoRegistriesError
	}{
		{"busybox", []string{"docker.io"}, []string{"docker.io/library/busybox:latest"}, ""},
		{"busybox:1.36", []string{"docker.io", "quay.io"}, []string{"docker.io/library/busybox:1.36", "quay.io/busybox:1.36"}, ""},
		{"team/app", []string{"registry.example.com:5000"}, []string{"registry.example.com:5000/team/app:latest"}, ""},
		{"docker.io/busybox", nil, []string{"docker.io/library/busybox:latest"}, ""},
		{"127.0.0.1:5000/test/busybox", nil, []string{"127.0.0.1:5000/test/busybox:latest"}, ""},
		{"localhost/imported", nil, []string{"localhost/imported:latest"}, ""},
		{"quay.io/a/b@sha256:" + strings.Repeat("a", 64), nil, []string{"quay.io/a/b@sha256:" + strings.Repeat("a", 64)}, ""},
		{"busybox", nil, nil, "empty"},
		{"", []string{"docker.io"}, nil, "ref"},
		{"Busybox", []string{"docker.io"}, nil, "ref"},
		{"127.0.0.1:5000/Upper", nil, nil, "ref"},
		{"a:b:c", []string{"docker.io"}, nil, "ref"},
		{"https://quay.io/a", nil, nil, "ref"},
		{"quay.io/a@sha256:abc", nil, nil, "ref"},
		{"busybox", []string{"bad registry"}, nil, "ref"},
	}
	for _, tc := range tests {
		got, err := Candidates(tc.ref, tc.registries)
		var re *RefError
		var nr *NoRegistriesError
		switch tc.err {
		case "ref":
			if !errors.As(err, &re) {
				t.Errorf("Candidates(%q) = %v, %v; want a *RefError", tc.ref, got, err)
			}
			continue
		case "empty":
			if !errors.As(err, &nr) {
				t.Errorf("Candidates(%q) = %v, %v; want a *NoRegistriesError", tc.ref, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Candidates(%q, %q): %v", tc.ref, tc.registries, err)
			continue
		}
		var s []string
		for _, n := range got {
			s = append(s, n.String())
		}
		if strings.Join(s, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Candidates(%q, %q) = %q, want %q", tc.ref, tc.registries, s, tc.want)
		}
	}
}

func TestIsShort(t *testing.T) {
	for ref, want := range map[string]bool{
		"busybox": true, "library/busybox": true, "team/app:1": true,
		"docker.io/busybox": false, "localhost/x": false, "host:5000/x": false, "127.0.0.1/x": false,
	} {
		if got := IsShort(ref); got != want {
			t.Errorf("IsShort(%q) = %v, want %v", ref, got, want)
		}
	}
}
