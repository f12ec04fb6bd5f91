package idmap

import specs "github.com/opencontainers/runtime-spec/specs-go"

// PlanRoot is the map rootless podman gives its store and its containers:
// inside id 0 is the caller's own id, and inside ids 1, 2, ... are the
// delegated host ids taken in the order of ranges, so that inside id N >= 1
// is host id start+N-1 of a single range. Host ids equal to id, and host
// ids an earlier range already gave, are skipped, as PlanKeepID does.
// Adjacent mappings are merged.
//
// Layer files written under this map keep the owners their archive names,
// and a store written by rootless podman with the same ranges has the same
// owners on disk, so either tool reads the other's store.
//
// PlanRoot returns nil when ranges is empty: a store without subordinate
// ids is a single-id store, and saying so is the caller's job.
func PlanRoot(id uint32, ranges []Range) []specs.LinuxIDMapping {
	if len(ranges) == 0 {
		return nil
	}
	out := []specs.LinuxIDMapping{{ContainerID: 0, HostID: id, Size: 1}}
	inside := uint64(1)
	for _, s := range usable(id, ranges) {
		n := min(uint64(s.Count), maxID+1-inside)
		if n == 0 {
			break
		}
		last := &out[len(out)-1]
		if len(out) > 1 && uint64(last.ContainerID)+uint64(last.Size) == inside &&
			uint64(last.HostID)+uint64(last.Size) == uint64(s.Start) {
			last.Size += uint32(n)
		} else {
			out = append(out, specs.LinuxIDMapping{ContainerID: uint32(inside), HostID: s.Start, Size: uint32(n)})
		}
		inside += n
	}
	return out
}
