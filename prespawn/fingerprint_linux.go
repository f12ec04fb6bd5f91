package prespawn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

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

// Fingerprint hashes what a process at procDir ("/proc/self" or
// "/proc/PID") would pass on to a sandbox it clones, together with extra,
// the spawn configuration. Two processes with the same fingerprint clone
// indistinguishable sandboxes.
func Fingerprint(procDir string, extra []string) (string, error) {
	h := sha256.New()
	put := func(k, v string) { fmt.Fprintf(h, "%s=%q\n", k, v) }
	put("version", "1")

	var st unix.Stat_t
	if err := unix.Stat(procDir+"/exe", &st); err != nil {
		return "", fmt.Errorf("fingerprint: %s/exe: %w", procDir, err)
	}
	put("exe", fmt.Sprintf("%d:%d:%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec))
	if err := unix.Stat(procDir+"/root", &st); err != nil {
		return "", fmt.Errorf("fingerprint: %s/root: %w", procDir, err)
	}
	put("root", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	for _, ns := range namespaces {
		l, err := os.Readlink(procDir + "/ns/" + ns)
		if err != nil && !os.IsNotExist(err) {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
		put("ns."+ns, l)
	}

	status, err := os.ReadFile(procDir + "/status")
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	fields := parseStatus(status)
	for _, f := range statusFields {
		put("status."+f, fields[f])
	}
	stat, err := os.ReadFile(procDir + "/stat")
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	nice, err := niceOf(stat)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %s/stat: %w", procDir, err)
	}
	put("nice", nice)
	for _, f := range []string{"cgroup", "limits", "loginuid", "sessionid", "oom_score_adj", "attr/current"} {
		b, err := os.ReadFile(procDir + "/" + f)
		if err != nil {
			// No LSM: attr/current fails with EINVAL, the same for both.
			put(f+".err", err.(*os.PathError).Err.Error())
			continue
		}
		put(f, string(b))
	}
	for i, e := range extra {
		put(fmt.Sprintf("extra.%d", i), e)
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

func parseStatus(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// niceOf reads the nice value, field 19 of /proc/PID/stat (proc(5)); the
// command name before it is in parentheses and may hold spaces.
func niceOf(stat []byte) (string, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", fmt.Errorf("no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); field 19 is f[16].
	if len(f) < 17 {
		return "", fmt.Errorf("%d fields", len(f)+2)
	}
	return f[16], nil
}

// MountsHash hashes the mount table as procDir sees it. A clone copies the
// mount namespace at that moment; mounts made later are missing from it.
func MountsHash(procDir string) (string, error) {
	b, err := os.ReadFile(procDir + "/mountinfo")
	if err != nil {
		return "", fmt.Errorf("mount table: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}
