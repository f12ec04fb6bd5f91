// Command fsbench measures file-system cost inside a root: it runs in
// the sandbox (copied into the bench image) and times, on TREE, a stat of
// every entry and a read of every file, then, in DIR, the creation of
// one small file per file of TREE and a sequential write of SIZE MiB
// with fsync. It prints one JSON object of milliseconds. bench/run.sh
// runs it on a host directory (bound in), on a kernel overlay root and on
// a fuse-overlayfs root, and prints the ratios.
//
// usage: fsbench TREE DIR SIZE_MIB
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: fsbench TREE DIR SIZE_MIB")
		os.Exit(2)
	}
	tree, dir := os.Args[1], os.Args[2]
	mib, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fail(err)
	}
	var files []string
	if err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	}); err != nil {
		fail(err)
	}
	out := map[string]float64{"files": float64(len(files))}
	// stat and read: the median of 3 passes (the first fills the caches).
	out["stat_ms"] = median3(func() error {
		return filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			_, err = os.Lstat(p)
			return err
		})
	})
	buf := make([]byte, 64<<10)
	out["read_ms"] = median3(func() error {
		for _, p := range files {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			for {
				_, err := f.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					f.Close()
					return err
				}
			}
			f.Close()
		}
		return nil
	})
	small := make([]byte, 512)
	out["create_ms"] = timed(func() error {
		for i := range files {
			d := filepath.Join(dir, "new", strconv.Itoa(i/200))
			if i%200 == 0 {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(d, strconv.Itoa(i)), small, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i * 7)
	}
	out["write_ms"] = timed(func() error {
		f, err := os.Create(filepath.Join(dir, "big"))
		if err != nil {
			return err
		}
		for range mib {
			if _, err := f.Write(block); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	os.Remove(filepath.Join(dir, "big"))
	json.NewEncoder(os.Stdout).Encode(out)
}

func timed(f func() error) float64 {
	start := time.Now()
	if err := f(); err != nil {
		fail(err)
	}
	return float64(time.Since(start).Microseconds()) / 1000
}

func median3(f func() error) float64 {
	ts := []float64{timed(f), timed(f), timed(f)}
	slices.Sort(ts)
	return ts[1]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fsbench:", err)
	os.Exit(1)
}
