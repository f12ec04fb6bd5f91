package storeclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/idmap"
	"sandbox/internal/e2e"
)

func TestFindIn(t *testing.T) {
	dir := t.TempDir()
	if _, err := findIn(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("findIn(empty dir) = %v, want a MissingError for a missing file", err)
	}
	p := filepath.Join(dir, HelperName)
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644)
	var me *MissingError
	if _, err := findIn(dir); !errors.As(err, &me) || me.Path != p {
		t.Errorf("findIn(not executable) = %v, want a MissingError for %s", err, p)
	}
	os.Chmod(p, 0o755)
	if got, err := findIn(dir); err != nil || got != p {
		t.Errorf("findIn = %q, %v; want %s", got, err, p)
	}
}

func TestDefaultRoot(t *testing.T) {
	tests := []struct {
		xdg, home, want string
		bad             bool
	}{
		{"/data", "/home/ada", "/data/sandbox/storage", false},
		{"", "/home/ada", "/home/ada/.local/share/sandbox/storage", false},
		{"relative", "/home/ada", "/home/ada/.local/share/sandbox/storage", false},
		{"", "", "", true},
	}
	for _, tc := range tests {
		got, err := DefaultRoot(tc.xdg, tc.home)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("DefaultRoot(%q, %q) = %q, %v; want %q", tc.xdg, tc.home, got, err, tc.want)
		}
	}
}

func TestDefaultRunRoot(t *testing.T) {
	xdg := t.TempDir()
	got, err := DefaultRunRoot(os.Getuid(), xdg)
	if err != nil || got != filepath.Join(xdg, "sandbox", "storage") {
		t.Fatalf("DefaultRunRoot = %q, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(xdg, "sandbox")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("private run-time directory: %v %v, want 0700", fi, err)
	}
	os.Chmod(filepath.Join(xdg, "sandbox"), 0o755)
	if _, err := DefaultRunRoot(os.Getuid(), xdg); err == nil {
		t.Errorf("DefaultRunRoot accepted a directory others may enter")
	}
}

func TestPlan(t *testing.T) {
	full := Plan(idmap.Decision{Full: true, SubUIDs: []idmap.Range{{Start: 200000, Count: 65536}}, SubGIDs: []idmap.Range{{Start: 300000, Count: 10}}}, 1001, 1002)
	wantU := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1001, Size: 1}, {ContainerID: 1, HostID: 200000, Size: 65536}}
	wantG := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1002, Size: 1}, {ContainerID: 1, HostID: 300000, Size: 10}}
	if !full.Full || !slices.Equal(full.UIDs, wantU) || !slices.Equal(full.GIDs, wantG) {
		t.Errorf("Plan(full) = %+v", full)
	}
	why := &idmap.HelperMissingError{Name: "newuidmap"}
	single := Plan(idmap.Decision{Reason: why}, 1001, 1002)
	if single.Full || single.Reason != why || !slices.Equal(single.UIDs, wantU[:1]) || !slices.Equal(single.GIDs, wantG[:1]) {
		t.Errorf("Plan(no helpers) = %+v, want 0->own only and the reason", single)
	}
}

func TestHelperEnv(t *testing.T) {
	t.Setenv("_CONTAINERS_ROOTLESS_UID", "4242")
	env := helperEnv(1001, 1002)
	var got []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "_CONTAINERS_") {
			got = append(got, kv)
		}
	}
	want := []string{"_CONTAINERS_USERNS_CONFIGURED=done", "_CONTAINERS_ROOTLESS_UID=1001", "_CONTAINERS_ROOTLESS_GID=1002"}
	if !slices.Equal(got, want) {
		t.Errorf("containers variables %q, want %q (the inherited one replaced)", got, want)
	}
}

// TestMain lets this test binary play the store helper: run by Run, it
// gets the contract's argv ("--sync-fd=3 --root R --runroot RR ...
// COMMAND") and does what COMMAND says. A Go program rather than a shell
// script on purpose: it makes no id-related system call before the sync
// byte, as sandbox-store does not (a shell may, racing newgidmap).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "--sync-fd=3" {
		os.Exit(fakeHelperMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeHelperMain(args []string) int {
	b := make([]byte, 1)
	if n, _ := os.NewFile(3, "sync").Read(b); n != 1 {
		return 9
	}
	cmd := args[len(args)-2:]
	switch cmd[0] {
	case "answer":
		m, _ := os.ReadFile("/proc/self/uid_map")
		fmt.Printf(`{"uid_map":%q,"uid":"%d","argv":%q}`, m, os.Getuid(), strings.Join(args[:len(args)-2], " "))
		return 0
	case "refuse":
		fmt.Println(`{"error":{"kind":"not-found","message":"no image x","ref":"x"}}`)
		return 1
	case "die":
		fmt.Println("oops")
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	case "hang":
		os.WriteFile(cmd[1], []byte(strconv.Itoa(os.Getpid())), 0o644)
		time.Sleep(time.Minute)
	}
	return 3
}

// fakeHelper is this test binary, which plays the helper (TestMain).
func fakeHelper(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func config(t *testing.T, bin string) Config {
	t.Helper()
	uid, gid := os.Getuid(), os.Getgid()
	name := strconv.Itoa(uid)
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return Config{Bin: bin, Root: "/nonexistent/root", RunRoot: "/nonexistent/run",
		User: name, UID: uint32(uid), GID: uint32(gid), PathEnv: os.Getenv("PATH")}
}

// requireUserns skips where user namespaces cannot be made (or fails
// under SANDBOX_TEST_STRICT=1, as CI runs).
func requireUserns(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/proc/self/ns/user")
	e2e.RequireX(t, err == nil, "no user namespaces: %v", err)
}

// The helper runs in its own user namespace with the map Plan decides, as
// root of it, with the argv of the contract, and its JSON comes back.
func TestRunMapsAndAnswers(t *testing.T) {
	requireUserns(t)
	bin := fakeHelper(t)
	var out struct {
		UIDMap string `json:"uid_map"`
		UID    string `json:"uid"`
		Argv   string `json:"argv"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Run(ctx, config(t, bin), &out, "answer", "x")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want []string
	for _, x := range m.UIDs {
		want = append(want, strconv.Itoa(int(x.ContainerID)), strconv.Itoa(int(x.HostID)), strconv.Itoa(int(x.Size)))
	}
	if strings.Join(strings.Fields(out.UIDMap), " ") != strings.Join(want, " ") {
		t.Errorf("uid_map inside %q, want %v (full: %v, reason: %v)", out.UIDMap, m.UIDs, m.Full, m.Reason)
	}
	if out.UID != "0" {
		t.Errorf("id -u inside = %q, want 0", out.UID)
	}
	wantArgv := "--sync-fd=3 --root /nonexistent/root --runroot /nonexistent/run"
	if !m.Full {
		wantArgv += " --single-id"
	}
	if out.Argv != wantArgv {
		t.Errorf("argv %q, want %q", out.Argv, wantArgv)
	}
}

func TestRunErrors(t *testing.T) {
	requireUserns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bin := fakeHelper(t)
	_, err := Run(ctx, config(t, bin), nil, "refuse", "x")
	var se *Error
	if !errors.As(err, &se) || se.Kind != "not-found" || se.Ref != "x" || se.Code != 1 {
		t.Errorf("answered error: %v (%#v), want an *Error of kind not-found", err, se)
	}

	_, err = Run(ctx, config(t, bin), nil, "die", "x")
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.Status.Signaled() || ee.Status.Signal() != syscall.SIGKILL || !strings.Contains(ee.Stdout, "oops") {
		t.Errorf("killed helper: %v, want an *ExitError for SIGKILL with its output", err)
	}

	_, err = Run(ctx, config(t, filepath.Join(t.TempDir(), "nothing")), nil, "images")
	var sp *SpawnError
	if !errors.As(err, &sp) {
		t.Errorf("missing binary: %v, want a *SpawnError", err)
	}
}

// Cancelling the context kills and reaps the helper.
func TestRunCancelKills(t *testing.T) {
	requireUserns(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	bin := fakeHelper(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, config(t, bin), nil, "hang", pidFile)
		done <- err
	}()
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 {
		if time.Now().After(deadline) {
			t.Fatal("helper never started")
		}
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("helper %d still exists after cancel (kill 0: %v)", pid, err)
	}
}
