package security

import (
	"fmt"
	"strings"
	"testing"

	"sandbox/internal/e2e"
)

// injected is the payload try pushes; try never prints it itself.
const injected = "INJ3CT3D"

// leftInput returns what the caller's terminal still had queued as input
// after the sandbox exited: the text between the last "LEFT[" and "]"
// (see leftScript).
func leftInput(out string) (string, bool) {
	i := strings.LastIndex(out, "LEFT[")
	if i < 0 {
		return "", false
	}
	rest := out[i+len("LEFT["):]
	j := strings.LastIndex(rest, "]")
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// leftScript reads, without waiting for a newline, whatever was pushed
// into the caller's terminal while the sandbox ran.
const leftScript = `stty -icanon min 0 time 5; printf 'LEFT['; head -c 64; printf ']\n'`

// Guards against terminal injection (CVE-2017-5226) and its filter bypass
// through the high 32 bits of the ioctl request (CVE-2019-10063, the
// kernel reads the request as an int): with -t, the command's terminal is
// the sandbox's own pty, so TIOCSTI can at most reach that one, never the
// caller's; the filter refuses both forms with EPERM. Without -t the
// command has no controlling terminal and the caller's terminal behind
// fds 1 and 2 refuses it.
func TestTIOCSTIDoesNotReachCallerTerminal(t *testing.T) {
	e2e.RequireUnprivileged(t)
	wd := t.TempDir()
	tryIn(t, wd)

	// Control: on the host, in the same kind of terminal, try does inject.
	ctl := e2e.PtyRun(t, wd, "./try inject 0:0x5412", "")
	if !strings.Contains(ctl.Stdout, injected) {
		t.Logf("control: TIOCSTI does not inject on this kernel even outside the sandbox (dev.tty.legacy_tiocsti=0?): the terminal checks prove less\n%s", ctl.Stdout)
	}
	reqs := []string{"0x5412", "0x100005412"}

	t.Run("with-tty", func(t *testing.T) {
		var toks []string
		for _, fd := range []string{"0", "1", "2"} {
			for _, req := range reqs {
				toks = append(toks, fd+":"+req)
			}
		}
		r := e2e.PtyRun(t, wd, fmt.Sprintf("%s run -t -- ./try inject %s; echo \"rc=$?\"\n%s",
			e2e.ShQuote(e2e.Bin), strings.Join(toks, " "), leftScript), "")
		left, ok := leftInput(r.Stdout)
		if !ok {
			t.Fatalf("the terminal read-back did not run\n%s", r)
		}
		if strings.Contains(left, injected) {
			t.Errorf("characters pushed from inside the sandbox reached the caller's terminal input")
		}
		got := injectResults(r.Stdout)
		for _, tok := range toks {
			if got[tok] != "EPERM" {
				t.Errorf("TIOCSTI %s on the sandbox's own terminal: %q, want EPERM from the filter", tok, got[tok])
			}
		}
		if !strings.Contains(r.Stdout, "rc=0") {
			t.Errorf("try did not run to the end inside")
		}
		if t.Failed() {
			t.Logf("%s", r)
		}
	})

	t.Run("without-tty", func(t *testing.T) {
		var toks []string
		for _, fd := range []string{"1", "2"} {
			for _, req := range reqs {
				toks = append(toks, fd+":"+req)
			}
		}
		r := e2e.PtyRun(t, wd, fmt.Sprintf("%s run -- ./try inject %s; echo \"rc=$?\"\n%s",
			e2e.ShQuote(e2e.Bin), strings.Join(toks, " "), leftScript), "")
		left, ok := leftInput(r.Stdout)
		if !ok {
			t.Fatalf("the terminal read-back did not run\n%s", r)
		}
		if strings.Contains(left, injected) || strings.Contains(strings.Split(r.Stdout, "LEFT[")[0], injected) {
			t.Errorf("characters pushed from inside the sandbox reached the caller's terminal")
		}
		got := injectResults(r.Stdout)
		for _, tok := range toks {
			switch got[tok] {
			case "EPERM", "EIO", "ENOTTY":
			default:
				t.Errorf("TIOCSTI %s on the caller's terminal: %q, want it refused (EPERM, EIO or ENOTTY)", tok, got[tok])
			}
		}
		if t.Failed() {
			t.Logf("%s", r)
		}
	})
}

// injectResults parses try's "inject FD:REQ RESULT" lines.
func injectResults(out string) map[string]string {
	m := map[string]string{}
	for _, l := range e2e.Lines(out) {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "inject" {
			m[f[1]] = f[2]
		}
	}
	return m
}
