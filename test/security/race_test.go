package security

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sandbox/internal/e2e"
)

const (
	// raceWindow bounds each phase of victims; raceMaxRuns bounds their
	// number.
	raceWindow  = 1500 * time.Millisecond
	raceMaxRuns = 400
	raceWorkers = 4
)

// Guards against the symlink-exchange mount race (CVE-2021-30465, runc;
// the same class as CVE-2018-15664 in docker cp): sandbox A, which has a
// shared directory bound read-write, swaps names in it with
// renameat2(RENAME_EXCHANGE) as fast as it can, while the user starts
// sandbox B again and again with
//
//	-v SHARED/dir:/mnt -v OTHER:/mnt/target
//
// so that B's second mount destination runs through paths A controls. A
// swaps SHARED/dir with a symlink to / (B's volume source), and
// SHARED/dir/target with a symlink to a place outside B's root: /, a new
// name in the caller's real $HOME, or a new name in a host directory no
// sandbox binds. Destinations must be resolved inside B's root (where
// those names are absent or read-only), so B either fails with a clean
// error or runs with its mounts inside its root. It must never create,
// mount over or write to anything on the host outside SHARED and OTHER.
//
// A volume source that is a symlink at the instant B opens it binds the
// symlink's target: that is what the user's path meant then, as with
// podman, and the test points that symlink at / only (unwritable), so a
// followed source shows up as a clean failure, not as a leak.
func TestMountDestinationSymlinkRace(t *testing.T) {
	e2e.RequireUnprivileged(t)
	e2e.RequireX(t, attacker.Bin != "", "attacker helper: %v", attacker.Err)
	home, err := os.UserHomeDir()
	e2e.RequireX(t, err == nil, "no home directory: %v", err)
	if f, err := os.CreateTemp(home, ".sectest-probe-"); err == nil {
		f.Close()
		os.Remove(f.Name())
	} else {
		e2e.RequireX(t, false, "$HOME %s is not writable, so an escape into it could not show: %v", home, err)
	}

	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	other := filepath.Join(base, "other")
	outside := filepath.Join(base, "outside")
	bwd := filepath.Join(base, "b")
	awd := filepath.Join(base, "a")
	for _, d := range []string{other, outside, bwd, awd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e2e.CopyFile(t, attacker.Bin, filepath.Join(awd, "try"), 0o755)

	tag := fmt.Sprintf("sectest-%d", os.Getpid())
	homeEscape := filepath.Join(home, tag+"-escape")
	outsideEscape := filepath.Join(outside, tag+"-escape")
	t.Cleanup(func() { os.RemoveAll(homeEscape) })
	rootBefore := dirNames(t, "/")
	homeBefore := dirNames(t, home)
	mountsBefore := hostMounts(t)

	type outcome struct {
		phase  string
		marker string
		r      e2e.Result
		err    error
	}
	var outcomes []outcome
	// inside: markers found where B may legitimately write: OTHER, the
	// shared tree (bound at /mnt) and B's own work directory. Collected
	// after each phase, before the next one resets the shared tree.
	inside := map[string]bool{}
	seq := 0
	for _, target := range []string{"/", homeEscape, outsideEscape} {
		phase := "target->" + target
		// A fresh shared tree per phase: the swaps leave it in any state.
		if err := os.RemoveAll(shared); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{shared, filepath.Join(shared, "dir"), filepath.Join(shared, "dir", "target")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("/", filepath.Join(shared, "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(shared, "dir", "target-link")); err != nil {
			t.Fatal(err)
		}

		// A: the attacker, bounded by its own clock and by the stop file.
		aDone := make(chan e2e.Result, 1)
		go func() {
			r, err := e2e.RunProg(e2e.RunOpts{Dir: awd, Timeout: e2e.DefaultTimeout},
				e2e.Bin, "run", "-v", shared+":/shared", "--",
				"./try", "race", "20", "/shared", "dir", "link", "/shared/dir", "target", "target-link")
			if err != nil {
				r.Stderr += "\n" + err.Error()
			}
			aDone <- r
		}()
		ready := filepath.Join(shared, "ready")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			select {
			case r := <-aDone:
				t.Fatalf("%s: the attacker sandbox ended before it started racing\n%s", phase, r)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the attacker sandbox did not start racing within 10s", phase)
			}
			time.Sleep(10 * time.Millisecond)
		}

		// B: the victims, raceWorkers at a time.
		var mu sync.Mutex
		var wg sync.WaitGroup
		n := 0 // runs in this phase
		stop := time.Now().Add(raceWindow)
		for w := 0; w < raceWorkers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					mu.Lock()
					if n >= raceMaxRuns {
						mu.Unlock()
						return
					}
					marker := fmt.Sprintf("%s-mark-%d", tag, seq)
					seq++
					n++
					mu.Unlock()
					// The command reports where OTHER is mounted in its
					// root (mountinfo's fourth field is the bind's source
					// path in the file system), then writes its marker.
					r, err := e2e.RunProg(e2e.RunOpts{Dir: bwd}, e2e.Bin, "run",
						"-v", filepath.Join(shared, "dir")+":/mnt", "-v", other+":/mnt/target", "--",
						"sh", "-c", fmt.Sprintf(`awk '$4 == %q {print "other-at", $5}' /proc/self/mountinfo; echo x > /mnt/target/%s`, other, marker))
					mu.Lock()
					outcomes = append(outcomes, outcome{phase, marker, r, err})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := os.WriteFile(filepath.Join(shared, "stop"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		a := <-aDone
		swaps := 0
		for _, l := range e2e.Lines(a.Stdout) {
			if strings.HasPrefix(l, "race ") && !strings.Contains(l, "exchanges=0 ") {
				swaps++
			}
		}
		if a.Code != 0 || swaps != 2 {
			t.Errorf("%s: the attacker did not swap both pairs, so the race was not run\n%s", phase, a)
		}
		t.Logf("%s: attacker: %s", phase, strings.Join(e2e.Lines(a.Stdout), "; "))
		for _, root := range []string{other, shared, bwd} {
			for name := range findTagged(root, tag, 0) {
				if !strings.HasSuffix(name, "-escape") {
					inside[name] = true
				}
			}
		}
	}

	// Anything of ours elsewhere in the test's tree or in $HOME (which
	// holds caches too big to walk; an escape lands near the top) is a
	// leak.
	found := findTagged(base, tag, 0, other, shared, bwd)
	maps.Copy(found, findTagged(home, tag, 3))
	for _, ps := range found {
		for _, p := range ps {
			t.Errorf("%s appeared on the host outside SHARED and OTHER", p)
		}
	}
	if got := dirNames(t, "/"); !slices.Equal(got, rootBefore) {
		t.Errorf("/ changed on the host: %v -> %v", rootBefore, got)
	}
	added := newNames(homeBefore, dirNames(t, home))
	if len(added) > 0 {
		t.Errorf("new entries in $HOME (%s) during the race: %v", home, added)
	}
	if got := hostMounts(t); !slices.Equal(got, mountsBefore) {
		t.Errorf("the host's mount table changed: %v", newNames(mountsBefore, got))
	}

	// Every victim ended in one of the ways the test can explain.
	hist := map[string]int{}
	otherAt := map[string]int{} // where successful victims had OTHER
	ok := 0
	for _, o := range outcomes {
		key := fmt.Sprintf("%s exit %d", o.phase, o.r.Code)
		hist[key]++
		switch {
		case o.err != nil:
			t.Errorf("%s: victim %s: %v\n%s", o.phase, o.marker, o.err, o.r)
		case strings.Contains(o.r.Stderr, "panic:") || strings.Contains(o.r.Stderr, "goroutine "):
			t.Errorf("%s: victim %s crashed\n%s", o.phase, o.marker, o.r)
		case o.r.Code == 125 && !strings.HasPrefix(o.r.Stderr, "sandbox: "):
			t.Errorf("%s: victim %s failed without a sandbox error message\n%s", o.phase, o.marker, o.r)
		case o.r.Code == 0:
			ok++
			if !inside[o.marker] {
				t.Errorf("%s: victim %s succeeded but its marker is in neither OTHER nor SHARED: it wrote somewhere the test cannot see", o.phase, o.marker)
			}
			// A mount that went through a symlink to a host path before
			// pivot_root is gone from B's table afterwards: the volume
			// the user asked for is mounted outside the root.
			var at []string
			for _, l := range e2e.Lines(o.r.Stdout) {
				if p, ok := strings.CutPrefix(l, "other-at "); ok {
					at = append(at, p)
				}
			}
			if len(at) == 0 {
				t.Errorf("%s: victim %s succeeded but OTHER is mounted nowhere inside its root: the mount landed outside\n%s", o.phase, o.marker, o.r)
			}
			for _, p := range at {
				otherAt[p]++
			}
		case o.r.Code < 0:
			t.Errorf("%s: victim %s was killed\n%s", o.phase, o.marker, o.r)
		}
	}
	keys := make([]string, 0, len(hist))
	for k := range hist {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var summary []string
	for _, k := range keys {
		summary = append(summary, fmt.Sprintf("%s: %d", k, hist[k]))
	}
	t.Logf("%d victim runs: %s", len(outcomes), strings.Join(summary, ", "))
	t.Logf("OTHER mounted at (successful runs): %v", otherAt)
	if ok == 0 {
		t.Errorf("no victim run succeeded, so no mount ever went through the raced paths")
	}
	for _, o := range outcomes {
		if o.r.Code == 125 {
			t.Logf("a clean failure, for the record: %s", strings.TrimSpace(o.r.Stderr))
			break
		}
	}
}

// findTagged walks root, maxDepth levels deep (0: no limit) and leaving
// out the skip subtrees, for entries whose name starts with tag; it
// returns their paths by name.
func findTagged(root, tag string, maxDepth int, skip ...string) map[string][]string {
	found := map[string][]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if slices.Contains(skip, p) {
			return filepath.SkipDir
		}
		if strings.HasPrefix(d.Name(), tag) {
			found[d.Name()] = append(found[d.Name()], p)
		}
		if d.IsDir() && maxDepth > 0 && strings.Count(strings.TrimPrefix(p, root), "/") >= maxDepth {
			return filepath.SkipDir
		}
		return nil
	})
	return found
}

// dirNames lists a directory's entries, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// newNames returns what after has that before lacks.
func newNames(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

// hostMounts lists the mount points the test's own mount namespace sees,
// sorted.
func hostMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range mountPoints(string(b)) {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
