package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// Guards -t through a real terminal: the command gets a terminal of its
// own with the caller's size, and the caller's terminal mode (raw while
// relaying) is restored afterwards.
func TestTTYThroughRealPTY(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	cmd := fmt.Sprintf(`stty rows 33 cols 111; before=$(stty -g)
%s run -t -- sh -c 'test -t 0 && echo TTY; stty size'
echo "rc=$?"
after=$(stty -g)
if [ "$before" = "$after" ]; then echo MODE-RESTORED; else echo "MODE-CHANGED $before -> $after"; fi`, e2e.ShQuote(e2e.Bin))
	r := e2e.PtyRun(t, wd, cmd, "")
	out := e2e.Lines(r.Stdout)
	for _, want := range []string{"TTY", "33 111", "rc=0", "MODE-RESTORED"} {
		if !slices.Contains(out, want) {
			t.Errorf("want a line %q in the terminal output", want)
		}
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}

// Guards window-size following under -t: a resize of the caller's
// terminal reaches the command's terminal.
func TestTTYFollowsWindowSize(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	// The command creates "started" in the shared workdir once it runs;
	// only then does the outer side resize, and the command waits (up to
	// 5 s) to see the new size.
	cmd := fmt.Sprintf(`stty rows 33 cols 111
(i=0; while [ ! -e started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; stty rows 40 cols 100 </dev/tty) &
%s run -t -- sh -c 'stty size; touch started; i=0; while [ "$(stty size 2>/dev/null)" != "40 100" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; stty size'
echo "rc=$?"; wait`, e2e.ShQuote(e2e.Bin))
	r := e2e.PtyRun(t, wd, cmd, "")
	out := e2e.Lines(r.Stdout)
	if len(out) < 3 || out[0] != "33 111" || out[1] != "40 100" || !slices.Contains(out, "rc=0") {
		t.Errorf("want the size 33 111, then 40 100 after the resize, then rc=0\n%s", r)
	}
}

// Guards input relay under -it: what the user types reaches the command.
func TestTTYRelaysInput(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	cmd := fmt.Sprintf(`%s run -it -- sh -c 'read line; echo "got:$line"'; echo "rc=$?"`, e2e.ShQuote(e2e.Bin))
	r := e2e.PtyRun(t, wd, cmd, "typed-by-user\n")
	out := e2e.Lines(r.Stdout)
	if !slices.Contains(out, "got:typed-by-user") || !slices.Contains(out, "rc=0") {
		t.Errorf("want the typed line echoed back by the command and rc=0\n%s", r)
	}
}

// Guards against terminal injection (CVE-2017-5226): without -t the
// command must not push input into the caller's terminal with TIOCSTI.
func TestNoTIOCSTIInjection(t *testing.T) {
	e2e.RequireUnprivileged(t)
	e2e.RequireX(t, tiocsti.Bin != "", "TIOCSTI helper: %v", tiocsti.Err)
	wd := t.TempDir()
	helper := filepath.Join(wd, "tiocsti")
	e2e.CopyFile(t, tiocsti.Bin, helper, 0o755)
	const payload = "INJ3CT3D"

	// Control: on the host, in the same kind of terminal, the helper does
	// inject. If the kernel refuses it anyway, the check below is weaker.
	ctl := e2e.PtyRun(t, wd, "./tiocsti", "")
	if !strings.Contains(ctl.Stdout, payload) {
		t.Logf("control: TIOCSTI does not inject on this kernel even outside the sandbox (dev.tty.legacy_tiocsti=0?); output:\n%s", ctl.Stdout)
	}

	// After the sandbox run, whatever was pushed into the input queue is
	// read back without waiting for a newline.
	cmd := fmt.Sprintf(`%s run -- ./tiocsti; echo "rc=$?"
stty -icanon min 0 time 5; printf 'LEFT['; head -c 64; printf ']\n'`, e2e.ShQuote(e2e.Bin))
	r := e2e.PtyRun(t, wd, cmd, "")
	if strings.Contains(r.Stdout, payload) {
		t.Errorf("characters pushed from inside the sandbox reached the caller's terminal")
	}
	out := e2e.Lines(r.Stdout)
	if !slices.Contains(out, "rc=0") {
		t.Errorf("the helper did not run to the end inside")
	}
	for fd := 0; fd <= 2; fd++ {
		ok := false
		for _, errno := range []string{"EPERM", "EIO", "ENOTTY"} {
			ok = ok || slices.Contains(out, fmt.Sprintf("fd%d: %s", fd, errno))
		}
		if !ok {
			t.Errorf("fd%d: want TIOCSTI refused with EPERM, EIO or ENOTTY", fd)
		}
	}
	if t.Failed() {
		t.Logf("%s", r)
	}
}
