package security

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// capBits are the kernel's numbers (capabilities(7)) of the capabilities
// the tests name.
var capBits = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
	"SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18,
	"SYS_ADMIN": 21, "SETFCAP": 31,
}

// defaultBounding is the documented default bounding set, podman's
// rootless default.
var defaultBounding = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
	"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

func capMask(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		b, ok := capBits[n]
		if !ok {
			panic("capMask: unknown capability " + n)
		}
		m |= 1 << b
	}
	return m
}

// Guards against privilege escalation through capabilities: the command
// runs with no_new_privs and none of the capabilities a user namespace
// hands its first process, the bounding set is the documented one, and
// --cap-drop/--cap-add change exactly what they say. Inheritable must be
// no wider than what was granted: an inheritable CAP_SYS_ADMIN is gained
// back by any file that carries it as a file capability.
func TestNoNewPrivsAndCapabilitySets(t *testing.T) {
	e2e.RequireUnprivileged(t)
	cases := []struct {
		name              string
		flags             []string
		bounding, granted uint64
	}{
		{"default", nil, capMask(defaultBounding...), 0},
		{"cap-drop-all", []string{"--cap-drop", "all"}, 0, 0},
		{"cap-add-net-raw", []string{"--cap-add", "NET_RAW"}, capMask(append(defaultBounding, "NET_RAW")...), capMask("NET_RAW")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"run"}, c.flags...), "--", "cat", "/proc/self/status")
			r := e2e.RunSandbox(t, e2e.RunOpts{}, args...)
			e2e.WantExit(t, r, 0)
			if got := statusField(r.Stdout, "NoNewPrivs"); got != "1" {
				t.Errorf("NoNewPrivs: %q, want 1", got)
			}
			want := map[string]uint64{
				"CapBnd": c.bounding, "CapEff": c.granted, "CapPrm": c.granted,
				"CapAmb": c.granted, "CapInh": c.granted,
			}
			for _, f := range []string{"CapBnd", "CapEff", "CapPrm", "CapAmb", "CapInh"} {
				v := statusField(r.Stdout, f)
				got, err := strconv.ParseUint(v, 16, 64)
				if err != nil {
					t.Errorf("%s: %q in /proc/self/status", f, v)
					continue
				}
				if got != want[f] {
					t.Errorf("%s: %016x, want %016x (extra %016x, missing %016x)", f, got, want[f], got&^want[f], want[f]&^got)
				}
			}
			if t.Failed() {
				t.Logf("%s", r)
			}
		})
	}
}

// Guards against privilege escalation through setuid binaries: a
// setuid-root program inside gains nothing. Two layers stop it and the
// test reports which it saw: every mount is nosuid, and no_new_privs makes
// execve ignore the bit. The host's newuidmap is setuid root (unmapped
// inside); the second case makes a setuid binary owned by the sandbox's
// own root (mapped), which without both layers would give euid 0 and the
// full bounding set.
func TestSetuidBinaryGainsNothing(t *testing.T) {
	e2e.RequireUnprivileged(t)
	t.Run("host-newuidmap", func(t *testing.T) {
		nu := e2e.RequireTool(t, "newuidmap")
		st, err := os.Stat(nu)
		e2e.RequireX(t, err == nil && st.Mode()&os.ModeSetuid != 0, "%s is not setuid (%v)", nu, err)
		r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--", "sh", "-c",
			fmt.Sprintf(`stat -c %%A %s; %s $$ 0 0 1; echo "rc=$?"`, e2e.ShQuote(nu), e2e.ShQuote(nu)))
		e2e.WantExit(t, r, 0)
		out := e2e.Lines(r.Stdout)
		if len(out) == 0 || len(out[0]) < 4 || out[0][3] != 's' {
			t.Errorf("want %s to show its setuid bit inside (the test would prove nothing otherwise)", nu)
		}
		if len(out) == 0 || out[len(out)-1] == "rc=0" {
			t.Errorf("newuidmap wrote a uid map from inside the sandbox")
		}
		if t.Failed() {
			t.Logf("%s", r)
		}
	})
	t.Run("setuid-inside-root", func(t *testing.T) {
		wd := t.TempDir()
		tryIn(t, wd)
		// CHOWN and FOWNER make the file and its bit; both are in the
		// ambient set, so try (plain) reports them as its CapEff.
		r := e2e.RunSandbox(t, e2e.RunOpts{Dir: wd}, "run", "--cap-add", "CHOWN", "--cap-add", "FOWNER", "--", "sh", "-c", `
grep -q '^ *0 ' /proc/self/uid_map || { echo NO-ROOT-MAPPED; exit 0; }
cp ./try ./try-suid && chown 0:0 ./try-suid && chmod 4755 ./try-suid || exit 3
stat -c 'file %u %a' ./try-suid
./try-suid ids
grep " $(pwd) " /proc/self/mountinfo`)
		if strings.Contains(r.Stdout, "NO-ROOT-MAPPED") {
			e2e.RequireX(t, false, "uid 0 is not mapped inside (no subordinate uids?)")
		}
		e2e.WantExit(t, r, 0)
		out := e2e.Lines(r.Stdout)
		if len(out) < 2 || out[0] != "file 0 4755" {
			t.Fatalf("could not make a setuid binary owned by the sandbox's root\n%s", r)
		}
		f := strings.Fields(out[1])
		if len(f) != 5 || f[0] != "ids" {
			t.Fatalf("unexpected ids line %q\n%s", out[1], r)
		}
		uid := strconv.Itoa(os.Getuid())
		if f[1] != uid || f[2] != uid || f[3] != uid {
			t.Errorf("a setuid-root binary inside ran with uids %s/%s/%s, want %s for all", f[1], f[2], f[3], uid)
		}
		granted := capMask("CHOWN", "FOWNER")
		if eff, err := strconv.ParseUint(f[4], 16, 64); err != nil || eff&^granted != 0 {
			t.Errorf("a setuid-root binary inside has CapEff %s, want no more than the granted %016x", f[4], granted)
		}
		if len(out) > 2 {
			t.Logf("layers: nosuid mount: %v (workdir mount: %s); no_new_privs is checked by TestNoNewPrivsAndCapabilitySets", strings.Contains(out[2], "nosuid"), out[2])
		}
		if t.Failed() {
			t.Logf("%s", r)
		}
	})
}

// Guards against dropping supplementary groups to get past "negative"
// group permissions (CVE-2014-8989): with only the caller's own ids mapped
// (no newgidmap), setgroups must be denied in the user namespace.
func TestSetgroupsDeniedUnderSingleMap(t *testing.T) {
	e2e.RequireUnprivileged(t)
	r := e2e.RunSandbox(t, e2e.RunOpts{}, "run", "--userns=single", "--", "cat", "/proc/self/setgroups")
	e2e.WantExit(t, r, 0)
	if got := strings.TrimSpace(r.Stdout); got != "deny" {
		t.Errorf("/proc/self/setgroups under --userns=single = %q, want deny\n%s", got, r)
	}
}

// Guards against sandbox itself becoming a privilege-escalation vector: a
// setuid or setgid copy would run its namespace and mount set-up, its
// option parsing and its helper look-ups on PATH with the owner's
// privileges for any caller, so it refuses to run at all. An unprivileged
// owner can set both bits on its own file, which is all the test needs.
func TestRefusesToRunSetuidOrSetgid(t *testing.T) {
	e2e.RequireUnprivileged(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "sandbox")
	e2e.CopyFile(t, e2e.Bin, bin, 0o755)
	// Control: the same copy without the bits works.
	ctl := e2e.RunBounded(t, e2e.RunOpts{}, bin, "run", "--", "true")
	e2e.WantExit(t, ctl, 0)

	for _, c := range []struct {
		name string
		mode os.FileMode
		bit  os.FileMode
	}{
		{"setuid", 0o755 | os.ModeSetuid, os.ModeSetuid},
		{"setgid", 0o755 | os.ModeSetgid, os.ModeSetgid},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.Chmod(bin, c.mode); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(bin)
			e2e.RequireX(t, err == nil && st.Mode()&c.bit != 0, "cannot set the %s bit on %s (%v)", c.name, bin, err)
			r := e2e.RunBounded(t, e2e.RunOpts{}, bin, "run", "--", "true")
			e2e.WantSandboxError(t, r)
			low := strings.ToLower(r.Stderr)
			if !strings.Contains(low, c.name) && !strings.Contains(low, "setuid") {
				t.Errorf("want the message to name %s\n%s", c.name, r)
			}
		})
	}
}
