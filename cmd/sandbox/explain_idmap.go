package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/idmap"
)

// idmapSingleFix is the way out of every id-mapping failure: it needs
// neither helpers nor ranges.
const idmapSingleFix = "sandbox run --userns=single ...   (maps only your own uid)"

// explainIDMap covers finding the subordinate ranges and the helpers, and
// running the helpers.
func explainIDMap(err error) *message {
	var (
		nr  *idmap.NoRangeError
		pe  *idmap.ParseError
		hm  *idmap.HelperMissingError
		hp  *idmap.HelperNotPrivilegedError
		he  *idmap.HelperError
		nd  *idmap.NotDelegatedError
		mse *idmap.MappingSyntaxError
	)
	switch {
	case errors.As(err, &he):
		hes := helperErrors(err)
		if len(hes) == 0 { // reached through an As method the walk does not follow
			hes = []*idmap.HelperError{he}
		}
		return explainHelperRuns(hes)
	case errors.As(err, &nr):
		return explainNoRange(nr)
	case errors.As(err, &pe):
		return explainSubIDSyntax(pe)
	case errors.As(err, &hm):
		return explainHelperMissing(hm)
	case errors.As(err, &hp):
		return explainHelperNotPrivileged(hp)
	case errors.As(err, &nd):
		return explainNotDelegated(nd)
	case errors.As(err, &mse):
		return &message{
			summary: fmt.Sprintf("cannot map user IDs: invalid mapping %q", mse.Value),
			causes:  []string{"a mapping is INSIDE:HOST:COUNT: decimal ids, COUNT at least 1, every id below 4294967295"},
			fixes:   []string{"sandbox run --uidmap 0:100000:65536 ...   (inside ids 0-65535 on host ids 100000-165535)"},
		}
	}
	return nil
}

// mapPrefix starts the summary of every id-mapping failure of kind k.
func mapPrefix(k idmap.Kind) string {
	if k == idmap.GID {
		return "cannot map group IDs: "
	}
	return "cannot map user IDs: "
}

// kindOfHelper tells newgidmap's failures from newuidmap's.
func kindOfHelper(path string) idmap.Kind {
	if filepath.Base(path) == idmap.GID.Helper() {
		return idmap.GID
	}
	return idmap.UID
}

func explainNoRange(e *idmap.NoRangeError) *message {
	who, login := fmt.Sprintf("user %q (%s %d)", e.User, e.Kind, e.ID), shellQuote(e.User)
	if e.User == "" {
		who, login = fmt.Sprintf("%s %d", e.Kind, e.ID), "$(id -un)"
	}
	return &message{
		summary: mapPrefix(e.Kind) + fmt.Sprintf("%s has no range in %s", who, e.File),
		fixes: []string{
			"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 " + login,
			idmapSingleFix,
		},
	}
}

func explainSubIDSyntax(e *idmap.ParseError) *message {
	k := idmap.UID
	if strings.Contains(e.File, "subgid") {
		k = idmap.GID
	}
	if e.File == "getsubids" {
		return &message{
			summary: mapPrefix(k) + fmt.Sprintf("getsubids printed an unexpected line %d: %q", e.Line, e.Text),
			causes:  []string{`getsubids should print one range per line, like "0: ada 100000 65536"`},
			fixes:   []string{"getsubids $(id -un)   (check what your subid source in /etc/nsswitch.conf returns)", idmapSingleFix},
		}
	}
	return &message{
		summary: mapPrefix(k) + fmt.Sprintf("%s line %d is malformed: %q", e.File, e.Line, e.Text),
		causes:  []string{"each line must be NAME:START:COUNT, e.g. ada:100000:65536"},
		fixes:   []string{fmt.Sprintf("sudoedit %s   (fix line %d)", e.File, e.Line), idmapSingleFix},
	}
}

// helperInstallFixes are the packages that ship newuidmap and newgidmap.
var helperInstallFixes = []string{
	"sudo apt-get install uidmap   (Debian/Ubuntu)",
	"sudo dnf install shadow-utils   (Fedora/RHEL)",
}

func explainHelperMissing(e *idmap.HelperMissingError) *message {
	k := kindOfHelper(e.Name)
	m := &message{summary: mapPrefix(k) + e.Name + " is not installed"}
	if len(e.Searched) == 0 {
		m.causes = []string{"PATH has no absolute directory to look for it in"}
		m.fixes = []string{"export PATH=/usr/local/bin:/usr/bin:/bin:$PATH"}
	} else {
		m.causes = []string{"searched " + strings.Join(e.Searched, ":")}
	}
	m.fixes = append(m.fixes, helperInstallFixes...)
	m.fixes = append(m.fixes, idmapSingleFix)
	return m
}

func explainHelperNotPrivileged(e *idmap.HelperNotPrivilegedError) *message {
	k := kindOfHelper(e.Path)
	if e.NoSUID {
		return &message{
			summary: mapPrefix(k) + e.Path + " is on a file system mounted nosuid",
			causes:  []string{"the kernel ignores the setuid bit and file capabilities there, so it cannot write the map"},
			fixes:   append(append([]string{}, helperInstallFixes...), idmapSingleFix),
		}
	}
	if nestedUserns() {
		return &message{
			summary: mapPrefix(k) + e.Path + " has no privilege in this user namespace",
			causes: []string{"sandbox itself runs inside a user namespace (/proc/self/uid_map is not the identity map),",
				"where the helper's owner is not mapped and the setuid bit has no effect"},
			fixes: []string{"run sandbox from the host's own user namespace", idmapSingleFix},
		}
	}
	capability := "cap_setuid"
	if k == idmap.GID {
		capability = "cap_setgid"
	}
	return &message{
		summary: mapPrefix(k) + e.Path + " is not setuid root",
		causes:  []string{"it has neither the setuid bit with owner root nor file capabilities, so it cannot write the map"},
		fixes: []string{
			"sudo chmod u+s " + shellQuote(e.Path),
			"sudo setcap " + capability + "+ep " + shellQuote(e.Path),
			idmapSingleFix,
		},
	}
}

// helperErrors returns every *idmap.HelperError in err's tree, in order:
// when both helpers fail, idmap.Apply joins both errors.
func helperErrors(err error) []*idmap.HelperError {
	var out []*idmap.HelperError
	var walk func(error)
	walk = func(err error) {
		switch x := err.(type) {
		case nil:
		case *idmap.HelperError:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

func explainHelperRuns(hes []*idmap.HelperError) *message {
	first := hes[0]
	m := &message{}
	if len(hes) > 1 {
		m.summary = mapPrefix(kindOfHelper(first.Path)) + "newuidmap and newgidmap failed"
	} else {
		m.summary = mapPrefix(kindOfHelper(first.Path)) + helperOutcome(first)
	}
	notAllowed := false
	for _, he := range hes {
		ran := "ran " + he.Path + " " + strings.Join(he.Args, " ")
		if len(hes) > 1 {
			ran += ": " + helperOutcome(he)
		}
		m.causes = append(m.causes, ran)
		for line := range strings.Lines(strings.TrimSpace(he.Stderr)) {
			if line = strings.TrimSpace(line); line != "" {
				m.causes = append(m.causes, line)
			}
		}
		notAllowed = notAllowed || strings.Contains(he.Stderr, "not allowed")
	}
	if notAllowed {
		m.fixes = append(m.fixes, "getsubids $(id -un); getsubids -g $(id -un)   (the ranges the helpers allow you)")
	}
	m.fixes = append(m.fixes, "sandbox doctor", idmapSingleFix)
	return m
}

// helperOutcome says how one helper run ended.
func helperOutcome(he *idmap.HelperError) string {
	name := filepath.Base(he.Path)
	if he.ExitCode >= 0 {
		return name + " exited with status " + strconv.Itoa(he.ExitCode)
	}
	if he.Err != nil {
		return name + " failed: " + errText(he.Err)
	}
	return name + " failed"
}

func explainNotDelegated(e *idmap.NotDelegatedError) *message {
	mp := e.Mapping
	kind := e.Kind.String()
	flag := "--" + kind + "map"
	hostEnd := uint64(mp.HostID) + uint64(mp.Size)
	uses := fmt.Sprintf("host %ss %s, which are", kind, idSpan(uint64(mp.HostID), hostEnd))
	if mp.Size == 1 {
		uses = fmt.Sprintf("host %s %d, which is", kind, mp.HostID)
	}
	m := &message{
		summary: mapPrefix(e.Kind) + fmt.Sprintf("mapping %d:%d:%d uses %s not delegated to you",
			mp.ContainerID, mp.HostID, mp.Size, uses),
	}
	ranges := "none"
	if len(e.Ranges) > 0 {
		parts := make([]string, len(e.Ranges))
		for i, r := range e.Ranges {
			parts[i] = idSpan(uint64(r.Start), uint64(r.Start)+uint64(r.Count))
		}
		ranges = strings.Join(parts, ", ")
	}
	m.causes = []string{fmt.Sprintf("your %s is %d; your subordinate %ss: %s", kind, e.Own, kind, ranges)}
	if s, ok := suggestMapping(mp, e.Ranges); ok {
		m.fixes = append(m.fixes, fmt.Sprintf("sandbox run %s %d:%d:%d ...   (host ids inside your ranges)", flag, s.ContainerID, s.HostID, s.Size))
	} else {
		m.fixes = append(m.fixes, "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un)")
	}
	m.fixes = append(m.fixes, fmt.Sprintf("sandbox run %s %d:%d:1 ...   (your own %s only)", flag, mp.ContainerID, e.Own, kind))
	return m
}

// suggestMapping moves mp onto the first range that holds it whole, or
// shrinks it to the largest range when none does.
func suggestMapping(mp specs.LinuxIDMapping, ranges []idmap.Range) (specs.LinuxIDMapping, bool) {
	var largest idmap.Range
	for _, r := range ranges {
		if r.Count >= mp.Size {
			return specs.LinuxIDMapping{ContainerID: mp.ContainerID, HostID: r.Start, Size: mp.Size}, true
		}
		if r.Count > largest.Count {
			largest = r
		}
	}
	if largest.Count == 0 {
		return specs.LinuxIDMapping{}, false
	}
	return specs.LinuxIDMapping{ContainerID: mp.ContainerID, HostID: largest.Start, Size: largest.Count}, true
}

// idSpan renders the ids [start, end) as "first-last".
func idSpan(start, end uint64) string {
	if end == start+1 {
		return strconv.FormatUint(start, 10)
	}
	return fmt.Sprintf("%d-%d", start, end-1)
}

// nestedUserns reports whether we run in a user namespace other than the
// initial one, whose uid_map is the identity over all ids.
func nestedUserns() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	return strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295"
}
