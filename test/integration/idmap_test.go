package integration

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// mapLine is one line of /proc/PID/uid_map or gid_map.
type mapLine struct{ inside, outside, count uint32 }

func (m mapLine) String() string { return fmt.Sprintf("%d %d %d", m.inside, m.outside, m.count) }

// parseIDMap parses the kernel's whitespace-padded map.
func parseIDMap(t *testing.T, s string) []mapLine {
	t.Helper()
	var out []mapLine
	for _, l := range e2e.Lines(s) {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("bad id map line %q", l)
		}
		var n [3]uint32
		for i := range f {
			v, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				t.Fatalf("bad id map line %q: %v", l, err)
			}
			n[i] = uint32(v)
		}
		out = append(out, mapLine{n[0], n[1], n[2]})
	}
	return out
}

// keepIDMap is the full map for the caller's id: the subordinate range
// fills every inside id except the caller's own, which maps to itself.
func keepIDMap(id uint32, r idRange) []mapLine {
	return []mapLine{{0, r.start, id}, {id, id, 1}, {id + 1, r.start + id, r.count - id}}
}

// checkFullMap compares a map read inside with the keep-id map.
func checkFullMap(t *testing.T, what string, got []mapLine, id uint32, r idRange) {
	t.Helper()
	if id < r.count {
		if want := keepIDMap(id, r); !slices.Equal(got, want) {
			t.Errorf("%s inside = %v, want the full keep-id map %v", what, got, want)
		}
		return
	}
	// The caller's id is beyond the range's size: the exact layout is the
	// implementation's choice, but own id to itself plus the whole range.
	var total uint64
	for _, m := range got {
		total += uint64(m.count)
	}
	if !slices.Contains(got, mapLine{id, id, 1}) || total != uint64(r.count)+1 {
		t.Errorf("%s inside = %v, want %d->%d plus all of %d:%d", what, got, id, id, r.start, r.count)
	}
}

const showMaps = `/bin/cat /proc/self/uid_map; echo --; /bin/cat /proc/self/gid_map; echo --; /usr/bin/id -u; /usr/bin/id -g`

// runMaps runs showMaps and returns the uid map, the gid map and the ids.
func runMaps(t *testing.T, o e2e.RunOpts, flags ...string) (uids, gids []mapLine, ids []string) {
	t.Helper()
	args := append(append([]string{"run"}, flags...), "--", "/bin/sh", "-c", showMaps)
	r := e2e.RunSandbox(t, o, args...)
	e2e.WantExit(t, r, 0)
	parts := strings.Split(r.Stdout, "--\n")
	if len(parts) != 3 {
		t.Fatalf("unexpected output\n%s", r)
	}
	return parseIDMap(t, parts[0]), parseIDMap(t, parts[1]), e2e.Lines(parts[2])
}

// Guards the default id mapping when newuidmap/newgidmap and subordinate
// ranges exist: the full keep-id map, the caller's own ids inside; and
// --userns=keep-id, which asks for exactly that.
func TestIDMapFullWithHelpers(t *testing.T) {
	e2e.RequireUnprivileged(t)
	subu, subg := requireSubIDs(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, flags := range [][]string{nil, {"--userns=keep-id"}} {
		t.Run(strings.Join(append([]string{"default"}, flags...), " "), func(t *testing.T) {
			uids, gids, ids := runMaps(t, e2e.RunOpts{}, flags...)
			checkFullMap(t, "uid_map", uids, uid, subu)
			checkFullMap(t, "gid_map", gids, gid, subg)
			if want := []string{fmt.Sprint(uid), fmt.Sprint(gid)}; !slices.Equal(ids, want) {
				t.Errorf("id -u, id -g inside = %q, want %q", ids, want)
			}
		})
	}
}

// Guards the fallback without helpers: only the caller's own ids are
// mapped, the run still works; and --userns=single forces that map even
// when the helpers are there.
func TestIDMapSingle(t *testing.T) {
	e2e.RequireUnprivileged(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	check := func(t *testing.T, o e2e.RunOpts, flags ...string) {
		t.Helper()
		uids, gids, ids := runMaps(t, o, flags...)
		if want := []mapLine{{uid, uid, 1}}; !slices.Equal(uids, want) {
			t.Errorf("uid_map inside = %v, want %v", uids, want)
		}
		if want := []mapLine{{gid, gid, 1}}; !slices.Equal(gids, want) {
			t.Errorf("gid_map inside = %v, want %v", gids, want)
		}
		if want := []string{fmt.Sprint(uid), fmt.Sprint(gid)}; !slices.Equal(ids, want) {
			t.Errorf("id -u, id -g inside = %q, want %q", ids, want)
		}
	}
	t.Run("helpers hidden", func(t *testing.T) {
		check(t, e2e.RunOpts{Env: noHelpersEnv(t)})
	})
	t.Run("--userns=single", func(t *testing.T) {
		requireSubIDs(t) // otherwise this is the case above
		check(t, e2e.RunOpts{}, "--userns=single")
	})
}

// Guards --userns=keep-id failing loudly instead of degrading when the
// helpers are missing.
func TestKeepIDWithoutHelpersFails(t *testing.T) {
	e2e.RequireUnprivileged(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{Env: noHelpersEnv(t)}, "run", "--userns=keep-id", "--", "/bin/sh", "-c", "echo RAN")
	e2e.WantSandboxError(t, r, "cannot map user IDs")
	wantFixLine(t, r)
	if strings.Contains(r.Stdout, "RAN") {
		t.Errorf("the command ran although the map it needs could not be made")
	}
}

// Guards --uidmap/--gidmap: an explicit map (own id plus part of the
// subordinate range) is applied as given, and host ids that are not the
// caller's are refused.
func TestExplicitIDMap(t *testing.T) {
	e2e.RequireUnprivileged(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	t.Run("own id and part of the range", func(t *testing.T) {
		subu, subg := requireSubIDs(t)
		// Inside ids 0..n-1 on the start of the range, the caller's id on
		// itself; n keeps the two apart.
		n := min(subu.count, subg.count, 1000, uid, gid)
		uids, gids, ids := runMaps(t, e2e.RunOpts{},
			"--uidmap", fmt.Sprintf("%d:%d:1", uid, uid), "--uidmap", fmt.Sprintf("0:%d:%d", subu.start, n),
			"--gidmap", fmt.Sprintf("%d:%d:1", gid, gid), "--gidmap", fmt.Sprintf("0:%d:%d", subg.start, n))
		sortMap := func(m []mapLine) []mapLine {
			return slices.SortedFunc(slices.Values(m), func(a, b mapLine) int { return int(a.inside) - int(b.inside) })
		}
		if want := []mapLine{{0, subu.start, n}, {uid, uid, 1}}; !slices.Equal(sortMap(uids), want) {
			t.Errorf("uid_map inside = %v, want %v", uids, want)
		}
		if want := []mapLine{{0, subg.start, n}, {gid, gid, 1}}; !slices.Equal(sortMap(gids), want) {
			t.Errorf("gid_map inside = %v, want %v", gids, want)
		}
		if want := []string{fmt.Sprint(uid), fmt.Sprint(gid)}; !slices.Equal(ids, want) {
			t.Errorf("id -u, id -g inside = %q, want %q", ids, want)
		}
	})
	t.Run("foreign host id refused", func(t *testing.T) {
		// Host uid 1 is not ours; make sure it is not in our range either.
		if r, err := subRange("/etc/subuid", userName(), os.Getuid()); err == nil && r.start <= 1 {
			t.Skipf("host uid 1 is in the caller's subordinate range %d:%d", r.start, r.count)
		}
		r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--uidmap", "0:1:1", "--", "/bin/sh", "-c", "echo RAN")
		e2e.WantSandboxError(t, r)
		if strings.Contains(r.Stdout, "RAN") {
			t.Errorf("the command ran with a foreign host uid mapped")
		}
	})
}
