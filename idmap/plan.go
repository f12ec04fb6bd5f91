package idmap

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// PlanSingle maps the caller's own id to itself and nothing else: the only
// map an unprivileged process may write without helpers (user_namespaces(7)).
func PlanSingle(id uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: id, HostID: id, Size: 1}}
}

// PlanKeepID maps the caller's own id to itself inside and backs every
// other inside id with the delegated host ids, taken in the order of
// ranges: inside 0..id-1 from the first of them, then id -> id, then
// inside id+1 upwards from the rest, up to the last valid id. Host ids
// equal to id, and host ids an earlier range already gave, are skipped so
// the map never names a host id twice (the kernel refuses overlapping
// maps). When the ranges hold fewer than id ids, the low inside ids they
// cannot back stay unmapped. Adjacent mappings are merged.
//
// PlanKeepID returns nil when ranges is empty: there is nothing to plan a
// full map from, and telling the user why (a *NoRangeError) is the
// caller's job.
func PlanKeepID(id uint32, ranges []Range) []specs.LinuxIDMapping {
	if len(ranges) == 0 {
		return nil
	}
	segs := usable(id, ranges)
	var out []specs.LinuxIDMapping
	emit := func(inside, host, size uint64) {
		if size == 0 {
			return
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if uint64(last.ContainerID)+uint64(last.Size) == inside &&
				uint64(last.HostID)+uint64(last.Size) == host {
				last.Size += uint32(size)
				return
			}
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: uint32(inside), HostID: uint32(host), Size: uint32(size)})
	}
	// fill backs inside ids [inside, limit) from segs, consuming them, and
	// returns the first inside id it could not back.
	fill := func(inside, limit uint64) uint64 {
		for inside < limit && len(segs) > 0 {
			s := &segs[0]
			n := min(limit-inside, uint64(s.Count))
			emit(inside, uint64(s.Start), n)
			inside += n
			s.Start += uint32(n)
			s.Count -= uint32(n)
			if s.Count == 0 {
				segs = segs[1:]
			}
		}
		return inside
	}
	fill(0, uint64(id))
	emit(uint64(id), uint64(id), 1)
	fill(uint64(id)+1, maxID+1)
	return out
}

// usable returns the host ids of ranges in order, without id itself, ids
// above maxID, and ids an earlier range already covers.
func usable(id uint32, ranges []Range) []Range {
	taken := []Range{{Start: id, Count: 1}}
	var out []Range
	for _, r := range ranges {
		end := min(r.end(), maxID+1)
		if uint64(r.Start) >= end {
			continue
		}
		pieces := []Range{{Start: r.Start, Count: uint32(end - uint64(r.Start))}}
		for _, t := range taken {
			var next []Range
			for _, p := range pieces {
				next = append(next, subtract(p, t)...)
			}
			pieces = next
		}
		taken = append(taken, pieces...)
		out = append(out, pieces...)
	}
	return out
}

// subtract returns the parts of p outside t, lower part first.
func subtract(p, t Range) []Range {
	ps, pe := uint64(p.Start), p.end()
	ts, te := uint64(t.Start), t.end()
	if te <= ps || pe <= ts {
		return []Range{p}
	}
	var out []Range
	if ps < ts {
		out = append(out, Range{Start: p.Start, Count: uint32(ts - ps)})
	}
	if te < pe {
		out = append(out, Range{Start: uint32(te), Count: uint32(pe - te)})
	}
	return out
}

// MappingSyntaxError is a --uidmap/--gidmap value that is not
// INSIDE:OUTSIDE:COUNT with a positive COUNT and every id below
// 4294967295.
type MappingSyntaxError struct {
	Value string
}

func (e *MappingSyntaxError) Error() string {
	return fmt.Sprintf("invalid id mapping %q: want INSIDE:OUTSIDE:COUNT", e.Value)
}

// ParseMapping parses "INSIDE:OUTSIDE:COUNT", the shape of podman's
// --uidmap and --gidmap, where OUTSIDE is a host id (not, as in podman's
// rootless mode, an index into the subordinate ranges).
func ParseMapping(s string) (specs.LinuxIDMapping, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return specs.LinuxIDMapping{}, &MappingSyntaxError{Value: s}
	}
	var v [3]uint64
	for i, x := range f {
		n, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			return specs.LinuxIDMapping{}, &MappingSyntaxError{Value: s}
		}
		v[i] = n
	}
	inside, outside, count := v[0], v[1], v[2]
	if count == 0 || inside+count > maxID+1 || outside+count > maxID+1 {
		return specs.LinuxIDMapping{}, &MappingSyntaxError{Value: s}
	}
	return specs.LinuxIDMapping{ContainerID: uint32(inside), HostID: uint32(outside), Size: uint32(count)}, nil
}

// NotDelegatedError is a mapping whose host ids are neither the caller's
// own id nor delegated to the caller; newuidmap/newgidmap would refuse it.
type NotDelegatedError struct {
	Kind    Kind
	Mapping specs.LinuxIDMapping
	Own     uint32
	Ranges  []Range
}

func (e *NotDelegatedError) Error() string {
	m := e.Mapping
	return fmt.Sprintf("%s mapping %d:%d:%d: host %ss %s not delegated (own %s %d, ranges %s)",
		e.Kind, m.ContainerID, m.HostID, m.Size, e.Kind,
		formatSpan(uint64(m.HostID), uint64(m.HostID)+uint64(m.Size)),
		e.Kind, e.Own, formatRanges(e.Ranges))
}

// CheckDelegated checks that every host id of ms is own or lies inside one
// of ranges, the same rule newuidmap(1) applies, so a bad --uidmap fails
// before anything is spawned. A mapping may span adjacent ranges.
func CheckDelegated(k Kind, ms []specs.LinuxIDMapping, own uint32, ranges []Range) error {
	type span struct{ start, end uint64 }
	spans := []span{{uint64(own), uint64(own) + 1}}
	for _, r := range ranges {
		if r.Count > 0 {
			spans = append(spans, span{uint64(r.Start), r.end()})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s.start <= last.end {
			last.end = max(last.end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	for _, m := range ms {
		start, end := uint64(m.HostID), uint64(m.HostID)+uint64(m.Size)
		ok := false
		for _, s := range merged {
			if s.start <= start && end <= s.end {
				ok = true
				break
			}
		}
		if !ok {
			return &NotDelegatedError{Kind: k, Mapping: m, Own: own, Ranges: ranges}
		}
	}
	return nil
}
