package spec

import (
	"fmt"
	"sort"
	"strings"
)

// capNumbers are the Linux capabilities by name (capabilities(7)), as the
// kernel numbers them. Kept here, in pure code, because the parent parses
// names and the child turns them into numbers.
var capNumbers = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// DefaultCaps is the bounding set of every sandbox unless changed with
// --cap-add/--cap-drop: the set rootless podman gives a container. A
// command running as a non-root uid gets none of them in its effective
// set; they bound what it could ever gain.
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// CapNumber returns the kernel's number for a canonical capability name.
func CapNumber(name string) (int, bool) {
	n, ok := capNumbers[name]
	return n, ok
}

// CanonicalCap turns "net_raw", "NET_RAW" or "CAP_NET_RAW" into
// "CAP_NET_RAW"; "all" and "ALL" become "ALL".
func CanonicalCap(field, name string) (string, error) {
	up := strings.ToUpper(strings.TrimSpace(name))
	if up == "ALL" {
		return "ALL", nil
	}
	if !strings.HasPrefix(up, "CAP_") {
		up = "CAP_" + up
	}
	if _, ok := capNumbers[up]; !ok {
		return "", &InvalidError{Field: field, Value: name, Reason: "is not a Linux capability (see capabilities(7))"}
	}
	return up, nil
}

// PlanCaps applies --cap-drop then --cap-add to the default set and returns
// the bounding set and the set the command gets (ambient, so a non-root
// command holds it after exec).
func PlanCaps(add, drop []string) (bounding, granted []string, err error) {
	set := map[string]bool{}
	for _, c := range DefaultCaps {
		set[c] = true
	}
	for _, d := range drop {
		c, err := CanonicalCap("--cap-drop", d)
		if err != nil {
			return nil, nil, err
		}
		if c == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, c)
	}
	grant := map[string]bool{}
	for _, a := range add {
		c, err := CanonicalCap("--cap-add", a)
		if err != nil {
			return nil, nil, err
		}
		if c == "ALL" {
			for n := range capNumbers {
				set[n], grant[n] = true, true
			}
			continue
		}
		set[c], grant[c] = true, true
	}
	return sortedKeys(set), sortedKeys(grant), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return capNumbers[out[i]] < capNumbers[out[j]] })
	return out
}

func checkCaps(field string, names []string) error {
	for _, n := range names {
		if _, ok := capNumbers[n]; !ok {
			return &InvalidError{Field: field, Value: n, Reason: fmt.Sprintf("is not a canonical capability name (want e.g. %s)", "CAP_NET_RAW")}
		}
	}
	return nil
}
