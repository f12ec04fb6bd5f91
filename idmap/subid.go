package idmap

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Kind says whether ids are user ids or group ids.
type Kind int

const (
	UID Kind = iota
	GID
)

// File is the file that delegates subordinate ids of this kind.
func (k Kind) File() string {
	if k == GID {
		return "/etc/subgid"
	}
	return "/etc/subuid"
}

// Helper is the setuid program that writes maps of this kind.
func (k Kind) Helper() string {
	if k == GID {
		return "newgidmap"
	}
	return "newuidmap"
}

func (k Kind) String() string {
	if k == GID {
		return "gid"
	}
	return "uid"
}

// maxID is the highest id a map may contain: (uid_t)-1 is reserved as
// "no id" by the kernel (user_namespaces(7)).
const maxID = 1<<32 - 2

// Range is a block of host ids delegated to a user.
type Range struct{ Start, Count uint32 }

// end is one past the last id of r, in 64 bits so it cannot wrap.
func (r Range) end() uint64 { return uint64(r.Start) + uint64(r.Count) }

// formatRanges renders ranges the way usermod --add-subuids takes them.
func formatRanges(rs []Range) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = formatSpan(uint64(r.Start), r.end())
	}
	return strings.Join(parts, ", ")
}

// formatSpan renders the ids [start, end) as "first-last".
func formatSpan(start, end uint64) string {
	if end == start+1 {
		return strconv.FormatUint(start, 10)
	}
	return fmt.Sprintf("%d-%d", start, end-1)
}

// ParseError is a line of a subordinate id file (or of getsubids output)
// that does not have the expected shape.
type ParseError struct {
	File string // "/etc/subuid", "/etc/subgid" or "getsubids"
	Line int    // 1-based
	Text string // the line, without surrounding blanks
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s line %d: malformed entry %q", e.File, e.Line, e.Text)
}

// NoRangeError says that no subordinate ids of Kind are delegated to the
// user, neither in File nor through getsubids.
type NoRangeError struct {
	Kind Kind
	User string
	ID   uint32
	File string
}

func (e *NoRangeError) Error() string {
	return fmt.Sprintf("no subordinate %s range for user %q (%s %d) in %s", e.Kind, e.User, e.Kind, e.ID, e.File)
}

// ParseSubIDs returns, in file order, the ranges that r (in subuid(5) /
// subgid(5) format, "NAME_OR_ID:START:COUNT") delegates to user or to the
// numeric id. Blank lines and lines starting with '#' are skipped; entries
// with a count of 0 delegate nothing and are skipped. Any malformed line is
// a *ParseError, even one for another user: a file the helpers may read
// differently from us is not one to plan from. file is used only in errors.
func ParseSubIDs(r io.Reader, file, user string, id uint32) ([]Range, error) {
	idText := strconv.FormatUint(uint64(id), 10)
	var out []Range
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || f[0] == "" {
			return nil, &ParseError{File: file, Line: n, Text: line}
		}
		rg, ok := parseRange(f[1], f[2])
		if !ok {
			return nil, &ParseError{File: file, Line: n, Text: line}
		}
		if (f[0] == user && user != "") || f[0] == idText {
			if rg.Count > 0 {
				out = append(out, rg)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}

// parseRange parses decimal START and COUNT and checks that the block stays
// below (uid_t)-1.
func parseRange(start, count string) (Range, bool) {
	s, err1 := strconv.ParseUint(start, 10, 32)
	c, err2 := strconv.ParseUint(count, 10, 32)
	if err1 != nil || err2 != nil || s+c > maxID+1 {
		return Range{}, false
	}
	return Range{Start: uint32(s), Count: uint32(c)}, true
}

// parseGetsubids reads the output of shadow's getsubids(1): one line per
// range, "INDEX: OWNER START COUNT", e.g. "0: ada 100000 65536".
func parseGetsubids(r io.Reader) ([]Range, error) {
	var out []Range
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 || !strings.HasSuffix(f[0], ":") {
			return nil, &ParseError{File: "getsubids", Line: n, Text: line}
		}
		if _, err := strconv.ParseUint(strings.TrimSuffix(f[0], ":"), 10, 32); err != nil {
			return nil, &ParseError{File: "getsubids", Line: n, Text: line}
		}
		rg, ok := parseRange(f[2], f[3])
		if !ok {
			return nil, &ParseError{File: "getsubids", Line: n, Text: line}
		}
		if rg.Count > 0 {
			out = append(out, rg)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read getsubids output: %w", err)
	}
	return out, nil
}
