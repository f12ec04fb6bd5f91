package preflight

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestParseProbeOutput(t *testing.T) {
	tests := []struct {
		name        string
		out         string
		mount       error  // errno or nil
		overlay     error  // errno, errNotReached or nil
		mountText   string // substring of Mount's text when it is not an errno
		overlayText string
		opts        string
	}{
		{name: "all good", out: "private 0\ntmpfs 0\noverlay 0 userxattr\ncopy-up 0\n", opts: "userxattr"},
		{name: "old kernel without userxattr", out: "private 0\ntmpfs 0\noverlay 0\ncopy-up 0\n"},
		{name: "apparmor takes the capabilities", out: "private 0\ntmpfs 1\n", mount: syscall.EPERM, overlay: errNotReached},
		{name: "chdir failed", out: "private 2 chdir\n", mount: syscall.ENOENT, overlay: errNotReached},
		{name: "overlay refused", out: "private 0\ntmpfs 0\noverlay 1\n", overlay: syscall.EPERM},
		{name: "upper fs without user xattrs", out: "private 0\ntmpfs 0\noverlay 95 userxattr\n", overlay: syscall.EOPNOTSUPP},
		{name: "copy-up failed", out: "private 0\ntmpfs 0\noverlay 0 userxattr\ncopy-up 5\n", overlay: syscall.EIO, opts: "userxattr"},
		{name: "child died after tmpfs", out: "private 0\ntmpfs 0\n", overlayText: "overlay: the probe reported no result"},
		{name: "nothing at all", out: "", mountText: "private: the probe reported no result", overlay: errNotReached},
		{name: "noise is ignored", out: "hello\nprivate x\nprivate 0\ntmpfs 0\noverlay 0\ncopy-up 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m MountFacts
			parseProbeOutput([]byte(tt.out), &m)
			if !m.Ran {
				t.Error("Ran = false")
			}
			check := func(what string, got, want error, text string) {
				t.Helper()
				switch {
				case text != "":
					if got == nil || !strings.Contains(got.Error(), text) {
						t.Errorf("%s = %v, want one saying %q", what, got, text)
					}
				case want == nil:
					if got != nil {
						t.Errorf("%s = %v, want nil", what, got)
					}
				case !errors.Is(got, want):
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("Mount", m.Mount, tt.mount, tt.mountText)
			check("Overlay", m.Overlay, tt.overlay, tt.overlayText)
			if m.OverlayOptions != tt.opts {
				t.Errorf("OverlayOptions = %q, want %q", m.OverlayOptions, tt.opts)
			}
		})
	}
}

func TestStepError(t *testing.T) {
	e := &StepError{Step: "overlay", Errno: syscall.EPERM, Detail: "userxattr"}
	if got, want := e.Error(), "overlay: userxattr: operation not permitted"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, syscall.EPERM) {
		t.Error("StepError does not unwrap to its errno")
	}
}
