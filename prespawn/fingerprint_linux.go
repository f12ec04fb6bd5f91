package prespawn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// statusFields are the lines of /proc/PID/status a sandbox inherits.
var statusFields = []string{
	"Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "Seccomp_filters",
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Umask",
	"Cpus_allowed_list", "Mems_allowed_list",
}

// namespaces are the entries of /proc/PID/ns compared.
var namespaces = []string{
	"user", "mnt", "pid", "pid_for_children", "net", "ipc", "uts",
	"cgroup", "time", "time_for_children",
}

// procFiles are the files of /proc/PID compared whole; attr/current fails
// without an LSM (EINVAL), the same for both sides.
var procFiles = []string{"cgroup", "limits", "loginuid", "sessionid", "oom_score_adj", "attr/current"}

// FingerprintError is a file of the process that could not be read.
type FingerprintError struct {
	Path string
	Err  error
}

func (e *FingerprintError) Error() string { return "fingerprint: " + e.Path + ": " + e.Err.Error() }
func (e *FingerprintError) Unwrap() error { return e.Err }

// Fingerprint hashes what a process at procDir ("/proc/self" or
// "/proc/PID") would pass on to a sandbox it clones, together with extra,
// the spawn configuration. Two processes with the same fingerprint clone
// indistinguishable sandboxes.
//
// It runs on every start-up, in a process whose code is cold: it reads
// with bare system calls into one buffer, and every field goes in with
// its length, so no two contexts read the same.
func Fingerprint(procDir string, extra []string) (string, error) {
	dir, err := unix.Open(procDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &FingerprintError{procDir, err}
	}
	defer unix.Close(dir)
	fail := func(name string, err error) (string, error) {
		return "", &FingerprintError{procDir + "/" + name, err}
	}
	var (
		out  = make([]byte, 0, 4096)
		file [8192]byte
	)
	put := func(k string, v []byte) {
		out = append(out, k...)
		out = append(out, '=')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		out = append(out, ':')
		out = append(out, v...)
		out = append(out, '\n')
	}
	put("version", []byte("2"))
	// The executable by identity and version; the root directory.
	var st unix.Stat_t
	for _, name := range []string{"exe", "root"} {
		if err := unix.Fstatat(dir, name, &st, 0); err != nil {
			return fail(name, err)
		}
		nums := []int64{int64(st.Dev), int64(st.Ino)}
		if name == "exe" {
			nums = append(nums, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		}
		var v []byte
		for i, n := range nums {
			if i > 0 {
				v = append(v, ':')
			}
			v = strconv.AppendInt(v, n, 10)
		}
		put(name, v)
	}
	for _, ns := range namespaces {
		n, err := unix.Readlinkat(dir, "ns/"+ns, file[:])
		if err != nil && err != unix.ENOENT {
			return fail("ns/"+ns, err)
		}
		put("ns."+ns, file[:max(n, 0)])
	}

	n, err := readAt(dir, "status", file[:])
	if err != nil {
		return fail("status", err)
	}
	for _, f := range statusFields {
		put("status."+f, statusField(file[:n], f))
	}
	n, err = readAt(dir, "stat", file[:])
	if err != nil {
		return fail("stat", err)
	}
	nice, err := niceOf(file[:n])
	if err != nil {
		return fail("stat", err)
	}
	put("nice", []byte(nice))
	for _, f := range procFiles {
		n, err := readAt(dir, f, file[:])
		if err != nil {
			put(f+".err", []byte(err.Error()))
			continue
		}
		put(f, file[:n])
	}
	for i, e := range extra {
		put("extra."+strconv.Itoa(i), []byte(e))
	}
	sum := sha256.Sum256(out)
	return hex.EncodeToString(sum[:16]), nil
}

// errTooLong: a /proc file longer than the buffer, which would compare
// only in part.
var errTooLong = errors.New("longer than expected")

// readAt reads the file name below dir into buf, whole.
func readAt(dir int, name string, buf []byte) (int, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			return 0, errTooLong
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if m == 0 {
			return n, nil
		}
		n += m
	}
}

// statusField is the value of "Name:\tvalue" in /proc/PID/status, trimmed.
func statusField(status []byte, name string) []byte {
	for len(status) > 0 {
		line := status
		if i := bytes.IndexByte(status, '\n'); i >= 0 {
			line, status = status[:i], status[i+1:]
		} else {
			status = nil
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(k) == name {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

// niceOf reads the nice value, field 19 of /proc/PID/stat (proc(5)); the
// command name before it is in parentheses and may hold spaces.
func niceOf(stat []byte) (string, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", errors.New("no command name")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); field 19 is f[16].
	if len(f) < 17 {
		return "", errors.New(strconv.Itoa(len(f)+2) + " fields")
	}
	return string(f[16]), nil
}

// MountsHash hashes the mount table as procDir sees it. A clone copies the
// mount namespace at that moment; mounts made later are missing from it.
func MountsHash(procDir string) (string, error) {
	fd, err := unix.Open(procDir+"/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &FingerprintError{procDir + "/mountinfo", err}
	}
	defer unix.Close(fd)
	h := sha256.New()
	var buf [16384]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &FingerprintError{procDir + "/mountinfo", err}
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}
