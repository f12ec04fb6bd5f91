package fuseoverlay

import (
	"testing"

	"sandbox/spec"
)

func TestOptions(t *testing.T) {
	r := &spec.Rootfs{Lower: []string{"/s/l3", "/s/l2", "/s/l1"}, Upper: "/s/c/diff", Work: "/s/c/work"}
	want := "lowerdir=/s/l3:/s/l2:/s/l1,upperdir=/s/c/diff,workdir=/s/c/work"
	if got := Options(r); got != want {
		t.Errorf("Options = %q, want %q (topmost layer first, as overlayfs)", got, want)
	}
}

// The daemon's stderr in an error keeps its last lines, without the
// notice it prints for every mount made for it.
func TestTail(t *testing.T) {
	tl := &tail{max: 200}
	tl.Write([]byte("unknown argument ignored: lazytime\n"))
	tl.Write([]byte("cannot open upper: No such file or directory\n"))
	if got, want := tl.String(), "cannot open upper: No such file or directory"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
	tl = &tail{max: 40}
	tl.Write([]byte("0123456789012345678901234567890123456789XYZ"))
	if got := tl.String(); len(got) > 40 || got[len(got)-3:] != "XYZ" {
		t.Errorf("tail kept %q, want the last 40 bytes", got)
	}
}

func TestStartNeedsUpper(t *testing.T) {
	if _, err := Start(&spec.Rootfs{Lower: []string{"/a"}}, nil, nil); err == nil {
		t.Error("Start without an upper directory succeeded")
	}
}
