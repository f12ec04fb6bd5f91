package idmap

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// m is a mapping in the INSIDE:OUTSIDE:COUNT order of the helpers.
func m(inside, host, size uint32) specs.LinuxIDMapping {
	return specs.LinuxIDMapping{ContainerID: inside, HostID: host, Size: size}
}

func TestPlanSingle(t *testing.T) {
	if got, want := PlanSingle(1000), []specs.LinuxIDMapping{m(1000, 1000, 1)}; !slices.Equal(got, want) {
		t.Errorf("PlanSingle(1000) = %v, want %v", got, want)
	}
}

func TestPlanKeepID(t *testing.T) {
	tests := []struct {
		name   string
		id     uint32
		ranges []Range
		want   []specs.LinuxIDMapping
	}{
		{name: "no ranges", id: 1000, ranges: nil, want: nil},
		{
			name: "one range", id: 1000, ranges: []Range{{100000, 65536}},
			want: []specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 1000, 1), m(1001, 101000, 64536)},
		},
		{
			name: "root with ranges next to itself merges into one", id: 0, ranges: []Range{{1, 65536}},
			want: []specs.LinuxIDMapping{m(0, 0, 65537)},
		},
		{
			name: "first range smaller than id", id: 1000, ranges: []Range{{100000, 500}, {200000, 65536}},
			want: []specs.LinuxIDMapping{m(0, 100000, 500), m(500, 200000, 500), m(1000, 1000, 1), m(1001, 200500, 65036)},
		},
		{
			name: "adjacent ranges merge", id: 5, ranges: []Range{{10, 3}, {13, 3}},
			want: []specs.LinuxIDMapping{m(0, 10, 5), m(5, 5, 1), m(6, 15, 1)},
		},
		{
			name: "own id inside a range is skipped", id: 1000, ranges: []Range{{900, 200}},
			want: []specs.LinuxIDMapping{m(0, 900, 100), m(100, 1001, 99), m(1000, 1000, 1)},
		},
		{
			name: "own id at the start of a range", id: 0, ranges: []Range{{0, 10}},
			want: []specs.LinuxIDMapping{m(0, 0, 10)},
		},
		{
			name: "range that is only the own id", id: 1000, ranges: []Range{{1000, 1}},
			want: []specs.LinuxIDMapping{m(1000, 1000, 1)},
		},
		{
			name: "duplicate entries are used once", id: 1000, ranges: []Range{{100000, 65536}, {100000, 65536}},
			want: []specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 1000, 1), m(1001, 101000, 64536)},
		},
		{
			name: "overlapping entries are used once", id: 1000, ranges: []Range{{100000, 2000}, {101000, 2000}},
			want: []specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 1000, 1), m(1001, 101000, 2000)},
		},
		{
			name: "empty range entries are ignored", id: 1, ranges: []Range{{5, 0}, {10, 2}},
			want: []specs.LinuxIDMapping{m(0, 10, 1), m(1, 1, 1), m(2, 11, 1)},
		},
		{
			name: "top of the id space", id: 1000, ranges: []Range{{4294967000, 295}},
			want: []specs.LinuxIDMapping{m(0, 4294967000, 295), m(1000, 1000, 1)},
		},
		{
			name: "every id", id: 0, ranges: []Range{{1, 4294967294}},
			want: []specs.LinuxIDMapping{m(0, 0, 4294967295)},
		},
		{
			name: "high own id between ranges", id: 4294967290, ranges: []Range{{0, 4294967290}, {4294967291, 4}},
			want: []specs.LinuxIDMapping{m(0, 0, 4294967295)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanKeepID(tt.id, tt.ranges)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("PlanKeepID(%d, %v) =\n  %v\nwant\n  %v", tt.id, tt.ranges, got, tt.want)
			}
			if got == nil {
				return
			}
			// Whatever it plans must pass the helpers' own rule.
			if err := CheckDelegated(UID, got, tt.id, tt.ranges); err != nil {
				t.Errorf("plan not delegated: %v", err)
			}
			checkNoOverlap(t, got)
		})
	}
}

// checkNoOverlap applies the kernel's rule for a map: no inside id and no
// host id may appear twice (kernel/user_namespace.c, mappings_overlap).
func checkNoOverlap(t *testing.T, ms []specs.LinuxIDMapping) {
	t.Helper()
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			if overlap(a.ContainerID, a.Size, b.ContainerID, b.Size) {
				t.Errorf("inside ids overlap: %v and %v", a, b)
			}
			if overlap(a.HostID, a.Size, b.HostID, b.Size) {
				t.Errorf("host ids overlap: %v and %v", a, b)
			}
		}
	}
}

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

func TestParseMapping(t *testing.T) {
	tests := []struct {
		in   string
		want specs.LinuxIDMapping
		bad  bool
	}{
		{in: "0:100000:65536", want: m(0, 100000, 65536)},
		{in: "1000:1000:1", want: m(1000, 1000, 1)},
		{in: "0:0:4294967295", want: m(0, 0, 4294967295)},
		{in: "4294967294:1:1", want: m(4294967294, 1, 1)},
		{in: "4294967295:1:1", bad: true},
		{in: "0:4294967294:2", bad: true},
		{in: "0:1:0", bad: true},
		{in: "0:1", bad: true},
		{in: "0:1:2:3", bad: true},
		{in: "", bad: true},
		{in: "a:1:2", bad: true},
		{in: "0:-1:2", bad: true},
		{in: " 0:1:2", bad: true},
		{in: "0:1:99999999999", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseMapping(tt.in)
		if tt.bad {
			var se *MappingSyntaxError
			if !errors.As(err, &se) || se.Value != tt.in {
				t.Errorf("ParseMapping(%q) = %v, %v; want *MappingSyntaxError", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMapping(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if got, want := (&MappingSyntaxError{Value: "0:1"}).Error(), `invalid id mapping "0:1": want INSIDE:OUTSIDE:COUNT`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCheckDelegated(t *testing.T) {
	ranges := []Range{{100000, 65536}, {165536, 1000}, {300000, 10}}
	tests := []struct {
		name string
		ms   []specs.LinuxIDMapping
		bad  int // 1-based index of the mapping reported; 0 for none
	}{
		{name: "none", ms: nil},
		{name: "own id", ms: []specs.LinuxIDMapping{m(0, 1000, 1)}},
		{name: "inside a range", ms: []specs.LinuxIDMapping{m(0, 100000, 65536), m(70000, 300000, 10)}},
		{name: "across adjacent ranges", ms: []specs.LinuxIDMapping{m(0, 160000, 6000)}},
		{name: "own id is not a range", ms: []specs.LinuxIDMapping{m(0, 1000, 2)}, bad: 1},
		{name: "past the end of a range", ms: []specs.LinuxIDMapping{m(0, 1000, 1), m(1, 300005, 6)}, bad: 2},
		{name: "host root", ms: []specs.LinuxIDMapping{m(0, 0, 1)}, bad: 1},
		{name: "in the gap", ms: []specs.LinuxIDMapping{m(0, 200000, 1)}, bad: 1},
		{name: "before a range", ms: []specs.LinuxIDMapping{m(0, 99999, 2)}, bad: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDelegated(GID, tt.ms, 1000, ranges)
			if tt.bad == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var nd *NotDelegatedError
			if !errors.As(err, &nd) {
				t.Fatalf("err = %v, want *NotDelegatedError", err)
			}
			if nd.Kind != GID || nd.Own != 1000 || nd.Mapping != tt.ms[tt.bad-1] || !slices.Equal(nd.Ranges, ranges) {
				t.Errorf("NotDelegatedError = %+v", nd)
			}
		})
	}
	// The own id adjacent to a range forms one span.
	if err := CheckDelegated(UID, []specs.LinuxIDMapping{m(0, 99999, 2)}, 99999, ranges); err != nil {
		t.Errorf("own id next to a range: %v", err)
	}
	err := &NotDelegatedError{Kind: UID, Mapping: m(0, 200000, 1000), Own: 1000, Ranges: []Range{{100000, 65536}, {300000, 1}}}
	want := "uid mapping 0:200000:1000: host uids 200000-200999 not delegated (own uid 1000, ranges 100000-165535, 300000)"
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n  %q\nwant\n  %q", got, want)
	}
}
