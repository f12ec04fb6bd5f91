package preflight

import (
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

func TestReadUsernsFacts(t *testing.T) {
	const (
		maxNS   = "proc/sys/user/max_user_namespaces"
		clone   = "proc/sys/kernel/unprivileged_userns_clone"
		apparmo = "proc/sys/kernel/apparmor_restrict_unprivileged_userns"
	)
	tests := []struct {
		name  string
		files map[string]string
		want  UsernsFacts
	}{
		{"all absent", nil, UsernsFacts{-1, -1, -1}},
		{"upstream kernel", map[string]string{maxNS: "96364\n"}, UsernsFacts{96364, -1, -1}},
		{"debian kernel, clone off", map[string]string{maxNS: "15000\n", clone: "0\n"}, UsernsFacts{15000, 0, -1}},
		{"ubuntu 24.04", map[string]string{maxNS: "63000\n", clone: "1\n", apparmo: "1\n"}, UsernsFacts{63000, 1, 1}},
		{"namespaces off", map[string]string{maxNS: "0"}, UsernsFacts{0, -1, -1}},
		{"garbage is unknown", map[string]string{maxNS: "lots\n", clone: "-3\n", apparmo: ""}, UsernsFacts{-1, -1, -1}},
		{"blanks around", map[string]string{maxNS: "  42 \n\n"}, UsernsFacts{42, -1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			if got := ReadUsernsFacts(fsys); got != tt.want {
				t.Errorf("ReadUsernsFacts = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCloneBlockerAndFixes(t *testing.T) {
	eperm := fmt.Errorf("fork/exec: %w", syscall.EPERM)
	tests := []struct {
		name    string
		facts   UsernsFacts
		err     error
		blocker string
		fixes   []string
	}{
		{"nothing blocks", UsernsFacts{96364, -1, -1}, eperm, "", nil},
		{"max is 0", UsernsFacts{0, -1, -1}, eperm, "user.max_user_namespaces is 0",
			[]string{"sudo sysctl -w user.max_user_namespaces=15000"}},
		{"clone off", UsernsFacts{15000, 0, -1}, eperm, "kernel.unprivileged_userns_clone is 0",
			[]string{"sudo sysctl -w kernel.unprivileged_userns_clone=1"}},
		{"both off: one command", UsernsFacts{0, 0, -1}, eperm, "kernel.unprivileged_userns_clone is 0",
			[]string{"sudo sysctl -w kernel.unprivileged_userns_clone=1 && sudo sysctl -w user.max_user_namespaces=15000"}},
		{"limit reached", UsernsFacts{100, 1, -1}, fmt.Errorf("x: %w", syscall.ENOSPC), "",
			[]string{"sudo sysctl -w user.max_user_namespaces=15000"}},
		{"limit reached, already high", UsernsFacts{20000, -1, -1}, syscall.ENOSPC, "",
			[]string{"sudo sysctl -w user.max_user_namespaces=40000"}},
		{"apparmor does not block clone", UsernsFacts{63000, 1, 1}, nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.facts.CloneBlocker(); got != tt.blocker {
				t.Errorf("CloneBlocker = %q, want %q", got, tt.blocker)
			}
			if got := tt.facts.CloneFixes(tt.err); !reflect.DeepEqual(got, tt.fixes) {
				t.Errorf("CloneFixes = %q, want %q", got, tt.fixes)
			}
		})
	}
}

func TestAppArmorFixes(t *testing.T) {
	got := AppArmorFixes("/usr/local/bin/sandbox")
	if len(got) != 2 {
		t.Fatalf("AppArmorFixes = %q, want a profile and a sysctl", got)
	}
	for _, want := range []string{"profile sandbox /usr/local/bin/sandbox flags=(unconfined)", "userns,", "sudo apparmor_parser -r /etc/apparmor.d/sandbox"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("profile fix %q lacks %q", got[0], want)
		}
	}
	if got[1] != "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" {
		t.Errorf("sysctl fix = %q", got[1])
	}
	// A path the printf format or the profile grammar would mangle gets
	// no profile, only the sysctl.
	for _, exe := range []string{"", "/home/a b/sandbox", "/opt/100%/sandbox"} {
		if got := AppArmorFixes(exe); len(got) != 1 {
			t.Errorf("AppArmorFixes(%q) = %q, want the sysctl alone", exe, got)
		}
	}
}

func TestErrnoName(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{syscall.EPERM, "EPERM (operation not permitted)"},
		{fmt.Errorf("open: %w", syscall.ENOENT), "ENOENT (no such file or directory)"},
		{syscall.Errno(200), syscall.Errno(200).Error()},
		{fmt.Errorf("plain"), "plain"},
	}
	for _, tt := range tests {
		if got := errnoName(tt.err); got != tt.want {
			t.Errorf("errnoName(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
