package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// bigFilesDir returns a fresh directory for containers/image's temporary
// files (blobs on their way into the store or an archive) and a func that
// removes it. The directory is locked (flock) while in use; directories
// whose lock is free belong to a process that died without cleaning up,
// killed mid-pull, and are removed here before a new one is made.
func (st *Store) bigFilesDir() (string, func(), error) {
	base := filepath.Join(st.s.GraphRoot(), "sandbox-tmp")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", nil, err
	}
	// Sweeping and making a directory with its lock happen under one lock
	// of base: a sweep must never see a lock file its maker has not locked
	// yet, or it removes a directory in use (concurrent pulls did).
	guard, err := os.OpenFile(filepath.Join(base, ".sweep.lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", nil, err
	}
	defer guard.Close()
	if err := unix.Flock(int(guard.Fd()), unix.LOCK_EX); err != nil {
		return "", nil, fmt.Errorf("lock %s: %w", guard.Name(), err)
	}
	sweepStale(base)
	dir, err := os.MkdirTemp(base, "copy-")
	if err != nil {
		return "", nil, err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	return dir, func() {
		os.RemoveAll(dir)
		os.Remove(lock.Name())
		lock.Close()
	}, nil
}

// sweepStale removes the temporary directories of base whose lock no live
// process holds.
func sweepStale(base string) {
	locks, _ := filepath.Glob(filepath.Join(base, "copy-*.lock"))
	for _, l := range locks {
		f, err := os.OpenFile(l, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		// Held by a live copy: EWOULDBLOCK, and the directory stays.
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(l[:len(l)-len(".lock")])
			os.Remove(l)
		}
		f.Close()
	}
	// A directory whose lock file never got made (killed in between).
	dirs, _ := filepath.Glob(filepath.Join(base, "copy-*"))
	for _, d := range dirs {
		if filepath.Ext(d) == ".lock" {
			continue
		}
		if _, err := os.Stat(d + ".lock"); errors.Is(err, os.ErrNotExist) {
			// Created by a process that has not locked it yet, or died
			// first; only the latter is old enough to matter.
			if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Minute {
				os.RemoveAll(d)
			}
		}
	}
}
