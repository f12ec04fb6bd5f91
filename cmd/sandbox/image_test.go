package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWriteImageTable(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	list := []imageSummary{
		{ID: "2704d4405c10eb58f397ba238722e9a5aaf591b06ad3bb6ca21b1b83ccb024cc", Names: []string{"127.0.0.1:5000/test/busybox:latest", "localhost/mine:v2"},
			Created: now.Add(-3 * time.Hour), Size: 1987655},
		{ID: "c1e71665537798b04d1a3e8ce529517ed76b14206f092352cd595ada124ebc6b", Created: now.Add(-40 * 24 * time.Hour), Size: 512},
	}
	var b bytes.Buffer
	writeImageTable(&b, list, now)
	want := `REPOSITORY                   TAG     IMAGE ID      CREATED      SIZE
127.0.0.1:5000/test/busybox  latest  2704d4405c10  3 hours ago  1.99 MB
localhost/mine               v2      2704d4405c10  3 hours ago  1.99 MB
<none>                       <none>  c1e716655377  40 days ago  512 B
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct{ in, repo, tag string }{
		{"docker.io/library/busybox:latest", "docker.io/library/busybox", "latest"},
		{"127.0.0.1:5000/x", "127.0.0.1:5000/x", "<none>"},
		{"127.0.0.1:5000/x:1", "127.0.0.1:5000/x", "1"},
		{"quay.io/a@sha256:abc", "quay.io/a", "sha256:abc"},
	}
	for _, tc := range tests {
		if r, g := splitName(tc.in); r != tc.repo || g != tc.tag {
			t.Errorf("splitName(%q) = %q, %q; want %q, %q", tc.in, r, g, tc.repo, tc.tag)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{-1: "unknown", 0: "0 B", 999: "999 B", 1000: "1 kB", 1987655: "1.99 MB", 5 << 30: "5.37 GB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// Mistakes on the command line are found before the store helper runs.
func TestImageCommandUsage(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"pull"}, "pull takes 1 argument(s), got 0"},
		{[]string{"pull", "a", "b"}, "pull takes 1 argument(s), got 2"},
		{[]string{"push", "a"}, "push takes 2 argument(s), got 1"},
		{[]string{"images", "--format", "yaml"}, `invalid --format "yaml": want table or json`},
		{[]string{"rmi"}, "rmi takes at least 1 argument(s), got 0"},
		{[]string{"load"}, "load needs -i FILE"},
		{[]string{"save", "img"}, "save needs -o FILE"},
		{[]string{"save", "-o", "f", "--format", "zip", "img"}, `invalid --format "zip": want docker-archive or oci-archive`},
		{[]string{"image"}, "image needs a subcommand"},
		{[]string{"image", "ls"}, `unknown image subcommand "ls"`},
		{[]string{"import", "rootfs.tar"}, "import takes 2 argument(s), got 1"},
		{[]string{"login", "--bogus", "r"}, "unknown flag: --bogus"},
		{[]string{"logout"}, "logout takes 1 argument(s), got 0"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		e := &env{stdout: &stdout, stderr: &stderr}
		c := commands[tc.args[0]]
		_, err := c.run(e, tc.args[1:])
		var u *usageError
		if !errors.As(err, &u) || u.msg != tc.msg || !strings.HasPrefix(u.fix, "sandbox ") {
			t.Errorf("sandbox %s: %v, want the usage error %q with a fix", strings.Join(tc.args, " "), err, tc.msg)
		}
	}
}
