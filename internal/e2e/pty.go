package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// PtyRun runs shellCmd under script(1), so that it (and the binary it
// starts) has a real terminal as its controlling tty. input, unless empty,
// is typed into the terminal after start; script's own stdin stays open
// (no EOF) until it exits. The output is the terminal's, with "\r\n" turned
// into "\n".
func PtyRun(t *testing.T, dir, shellCmd, input string) Result {
	t.Helper()
	scriptBin := RequireTool(t, "script")
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, scriptBin, "-qec", shellCmd, "/dev/null")
	cmd.Dir = dir
	cmd.Env = EnvWith("SHELL=/bin/sh", "TERM=xterm")
	cmd.WaitDelay = 5 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd.Stdin = pr
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting script: %v", err)
	}
	pr.Close()
	if input != "" {
		if _, err := io.WriteString(pw, input); err != nil {
			t.Errorf("typing into script: %v", err)
		}
	}
	err = cmd.Wait()
	r := Result{Stdout: strings.ReplaceAll(out.String(), "\r\n", "\n"), Code: -1}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("script -c %q did not finish within %v (killed)\n%s", shellCmd, DefaultTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("script: %v\n%s", err, r)
	}
	return r
}
