package prespawn

import (
	"os"
	"strconv"
)

// inDir is a path that resolves name through the open directory dir,
// short enough for a unix socket address.
func inDir(dir *os.File, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + name
}

func socketName(key string) string { return "warm-" + key + ".sock" }
func lockName(key string) string   { return "warm-" + key + ".lock" }
