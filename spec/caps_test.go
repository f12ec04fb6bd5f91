package spec

import (
	"reflect"
	"testing"
)

func TestPlanCaps(t *testing.T) {
	tests := []struct {
		name          string
		add, drop     []string
		wantBounding  []string
		wantGranted   []string
		wantErrReason string
	}{
		{name: "default", wantBounding: DefaultCaps, wantGranted: []string{}},
		{name: "drop all", drop: []string{"all"}, wantBounding: []string{}, wantGranted: []string{}},
		{name: "drop one, lower case without prefix", drop: []string{"kill"},
			wantBounding: []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_SETFCAP"},
			wantGranted:  []string{}},
		{name: "drop all then add one", drop: []string{"ALL"}, add: []string{"CAP_NET_RAW"},
			wantBounding: []string{"CAP_NET_RAW"}, wantGranted: []string{"CAP_NET_RAW"}},
		{name: "unknown", add: []string{"FLY"}, wantErrReason: "is not a Linux capability (see capabilities(7))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, g, err := PlanCaps(tt.add, tt.drop)
			if tt.wantErrReason != "" {
				inv, ok := err.(*InvalidError)
				if !ok || inv.Reason != tt.wantErrReason {
					t.Fatalf("err = %v, want reason %q", err, tt.wantErrReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string{}, tt.wantBounding...)
			sortCaps(want)
			if !reflect.DeepEqual(b, want) {
				t.Errorf("bounding = %v, want %v", b, want)
			}
			if !reflect.DeepEqual(g, tt.wantGranted) {
				t.Errorf("granted = %v, want %v", g, tt.wantGranted)
			}
		})
	}
}

func sortCaps(c []string) {
	m := map[string]bool{}
	for _, x := range c {
		m[x] = true
	}
	copy(c, sortedKeys(m))
}
