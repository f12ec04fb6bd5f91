package idmap

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestPlanRoot(t *testing.T) {
	tests := []struct {
		name   string
		id     uint32
		ranges []Range
		want   []specs.LinuxIDMapping
	}{
		{name: "no ranges", id: 1001, ranges: nil, want: nil},
		{
			// The CI user: container uid N >= 1 is host uid 200000+N-1.
			name: "one range", id: 1001, ranges: []Range{{200000, 65536}},
			want: []specs.LinuxIDMapping{m(0, 1001, 1), m(1, 200000, 65536)},
		},
		{
			name: "two ranges follow each other inside", id: 1000, ranges: []Range{{100000, 10}, {300000, 5}},
			want: []specs.LinuxIDMapping{m(0, 1000, 1), m(1, 100000, 10), m(11, 300000, 5)},
		},
		{
			name: "adjacent ranges merge", id: 1000, ranges: []Range{{100000, 10}, {100010, 5}},
			want: []specs.LinuxIDMapping{m(0, 1000, 1), m(1, 100000, 15)},
		},
		{
			// Never 0->own and N->own: the kernel refuses a host id twice.
			name: "own id inside a range is skipped", id: 1000, ranges: []Range{{999, 3}},
			want: []specs.LinuxIDMapping{m(0, 1000, 1), m(1, 999, 1), m(2, 1001, 1)},
		},
		{
			name: "duplicate and overlapping ranges are used once", id: 1000, ranges: []Range{{100000, 10}, {100005, 10}, {100000, 10}},
			want: []specs.LinuxIDMapping{m(0, 1000, 1), m(1, 100000, 15)},
		},
		{
			name: "range that is only the own id", id: 1000, ranges: []Range{{1000, 1}},
			want: []specs.LinuxIDMapping{m(0, 1000, 1)},
		},
		{
			// Inside ids stop below (uid_t)-1, whatever the ranges hold.
			name: "clipped at the last valid id", id: 5, ranges: []Range{{10, 1<<32 - 20}},
			want: []specs.LinuxIDMapping{m(0, 5, 1), m(1, 10, 1<<32-20)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanRoot(tc.id, tc.ranges)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("PlanRoot(%d, %v) = %v, want %v", tc.id, tc.ranges, got, tc.want)
			}
			if got == nil {
				return
			}
			// Every host id at most once, and all of them delegated.
			if err := CheckDelegated(UID, got, tc.id, tc.ranges); err != nil {
				t.Errorf("plan maps an id that is not ours: %v", err)
			}
			seen := map[uint64]bool{}
			for _, g := range got {
				for h := uint64(g.HostID); h < uint64(g.HostID)+min(uint64(g.Size), 100); h++ {
					if seen[h] {
						t.Errorf("host id %d mapped twice in %v", h, got)
					}
					seen[h] = true
				}
			}
		})
	}
}
