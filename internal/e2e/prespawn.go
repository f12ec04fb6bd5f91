package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prespawners lists the pids of the pre-spawners whose socket directory
// (their fd 3) is below dir: those the runs of a test started. A child a
// pre-spawner is forking looks like one until it execs; it is left out.
func Prespawners(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv := strings.Split(string(cmdline), "\x00")
		if len(argv) < 2 || argv[1] != "__prespawn" {
			continue
		}
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(dir, target); err == nil && !strings.HasPrefix(rel, "..") {
			pids = append(pids, pid)
		}
	}
	var out []int
	for _, pid := range pids {
		if !slices.Contains(pids, parentOf(pid)) {
			out = append(out, pid)
		}
	}
	return out
}

// parentOf is pid's parent, or -1.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// StopPrespawners ends the pre-spawners Prespawners(dir) finds with
// SIGTERM and waits (bounded) until they are gone.
func StopPrespawners(dir string) error {
	pids := Prespawners(dir)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for Running(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("pre-spawner %d did not exit on SIGTERM", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Running reports whether pid is a process that has not exited (a zombie
// has).
func Running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
