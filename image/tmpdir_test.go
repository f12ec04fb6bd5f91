package image

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A copy's temporary directory survives the sweep while its lock is held,
// and goes once the lock is free (its process died).
func TestSweepStale(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, lock bool) *os.File {
		if err := os.MkdirAll(filepath.Join(base, name, "blob"), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(base, name+".lock"))
		if err != nil {
			t.Fatal(err)
		}
		if lock {
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	live := mk("copy-live", true)
	defer live.Close()
	dead := mk("copy-dead", false)
	dead.Close()
	sweepStale(base)
	if _, err := os.Stat(filepath.Join(base, "copy-live", "blob")); err != nil {
		t.Errorf("a live copy's directory was removed: %v", err)
	}
	for _, p := range []string{"copy-dead", "copy-dead.lock"} {
		if _, err := os.Stat(filepath.Join(base, p)); !os.IsNotExist(err) {
			t.Errorf("%s left after the sweep: %v", p, err)
		}
	}
}
