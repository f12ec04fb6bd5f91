//go:build linux

package userns

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns both ends of a sync socket, as the parent creates it.
func socketPair(t *testing.T) (parent, child conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	p, err := pollableConn(fds[0], "sync-parent")
	if err != nil {
		t.Fatalf("pollable: %v", err)
	}
	c := os.NewFile(uintptr(fds[1]), "sync-child")
	t.Cleanup(func() { p.f.Close(); c.Close() })
	return p, conn{f: c}
}

// The parent's end waits in the poller for a message that comes later,
// and a recv waiting there ends when the conn is closed (Kill, release).
func TestPollableConnWaits(t *testing.T) {
	parent, child := socketPair(t)
	go func() {
		time.Sleep(50 * time.Millisecond)
		child.send(message{Kind: msgExit, Status: 7})
	}()
	m, _, err := parent.recv(make([]byte, maxMessage))
	if err != nil || m.Kind != msgExit || m.Status != 7 {
		t.Fatalf("recv = %+v, %v; want the exit message sent after 50 ms", m, err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := parent.recv(make([]byte, maxMessage))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	parent.f.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("recv on a closed conn returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("recv still waits after its conn was closed")
	}
}

func TestMessageRoundTrip(t *testing.T) {
	parent, child := socketPair(t)
	msgs := []message{
		{Kind: msgHello},
		{Kind: msgContinue},
		{Kind: msgReady, Pid: 2, Times: []StageTime{{Stage: StageStart, Nanos: 1}, {Stage: StageExec, Nanos: 1 << 62}}},
		{Kind: msgExit, Status: 3, Signal: int(syscall.SIGTERM)},
		failure(StageMounts, "mount point", "/data", syscall.EROFS),
	}
	// All are queued before any is read: SOCK_SEQPACKET keeps each send a
	// packet of its own, so the reader never sees two glued together.
	for _, m := range msgs {
		if err := child.send(m); err != nil {
			t.Fatalf("send %s: %v", m.Kind, err)
		}
	}
	for _, want := range msgs {
		got, fds, err := parent.recv(make([]byte, maxMessage))
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if len(fds) != 0 {
			t.Errorf("%s arrived with fds %v", want.Kind, fds)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("recv = %+v, want %+v", got, want)
		}
	}
}

func TestMessagePassesFD(t *testing.T) {
	parent, child := socketPair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	if err := child.send(message{Kind: msgPty}, int(w.Fd())); err != nil {
		t.Fatalf("send with fd: %v", err)
	}
	m, fds, err := parent.recv(make([]byte, maxMessage))
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if m.Kind != msgPty || len(fds) != 1 {
		t.Fatalf("recv = %+v with fds %v, want pty with one fd", m, fds)
	}
	got := os.NewFile(uintptr(fds[0]), "passed")
	defer got.Close()
	if fds[0] == int(w.Fd()) {
		t.Errorf("received fd %d is the sent one, not a new descriptor", fds[0])
	}
	// The receiver owns a close-on-exec copy: it must not leak into the
	// command the parent might start next.
	flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd %d is not close-on-exec", fds[0])
	}
	// It is the same open file: what goes in through the copy comes out
	// of the pipe.
	if _, err := got.Write([]byte("through the copy")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "through the copy" {
		t.Errorf("pipe read %q, %v; want what was written to the passed fd", buf[:n], err)
	}
}

func TestMessagePeerGone(t *testing.T) {
	parent, child := socketPair(t)
	if err := child.send(message{Kind: msgHello}); err != nil {
		t.Fatal(err)
	}
	child.f.Close()
	// A packet sent before the close is still delivered; only then EOF.
	if m, _, err := parent.recv(make([]byte, maxMessage)); err != nil || m.Kind != msgHello {
		t.Fatalf("recv = %+v, %v; want the hello sent before closing", m, err)
	}
	if _, _, err := parent.recv(make([]byte, maxMessage)); !errors.Is(err, errPeerGone) {
		t.Errorf("recv after close = %v, want errPeerGone", err)
	}
}

func TestMessageTooLarge(t *testing.T) {
	parent, child := socketPair(t)
	big := failure(StageStart, "read spec", "", errors.New(strings.Repeat("x", maxMessage)))
	if err := child.send(big); err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, _, err := parent.recv(make([]byte, maxMessage)); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("recv of a %d-byte packet = %v, want a truncation error", maxMessage, err)
	}
	// The socket stays usable for the next packet.
	if err := child.send(message{Kind: msgHello}); err != nil {
		t.Fatal(err)
	}
	if m, _, err := parent.recv(make([]byte, maxMessage)); err != nil || m.Kind != msgHello {
		t.Errorf("recv after truncation = %+v, %v; want hello", m, err)
	}
}

func TestMessageNotJSON(t *testing.T) {
	parent, child := socketPair(t)
	if err := unix.Sendmsg(int(child.f.Fd()), []byte("{kind"), nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := parent.recv(make([]byte, maxMessage)); err == nil || !strings.HasPrefix(err.Error(), "sync socket: ") {
		t.Errorf("recv of garbage = %v, want a sync socket error", err)
	}
}

// TestChildFailure sends a failure the way the child does and checks what
// the parent makes of it.
func TestChildFailure(t *testing.T) {
	tests := []struct {
		name      string
		stage     string
		err       error
		want      ChildError
		wantText  string
		wantErrno syscall.Errno
	}{
		{
			name:      "errno from a step",
			stage:     StageExec,
			err:       step("exec", "nosuchcmd", syscall.ENOENT),
			want:      ChildError{Stage: StageExec, Op: "exec", Path: "nosuchcmd", Errno: syscall.ENOENT},
			wantText:  "child: exec: exec nosuchcmd: no such file or directory",
			wantErrno: syscall.ENOENT,
		},
		{
			name:      "wrapped errno",
			stage:     StageMounts,
			err:       step("mount point", "/data", &os.PathError{Op: "openat2", Path: "data", Err: syscall.EACCES}),
			want:      ChildError{Stage: StageMounts, Op: "mount point", Path: "/data", Errno: syscall.EACCES},
			wantText:  "child: mounts: mount point /data: permission denied",
			wantErrno: syscall.EACCES,
		},
		{
			name:     "error without errno keeps its text",
			stage:    StageStart,
			err:      errors.New("decode spec: unexpected EOF"),
			want:     ChildError{Stage: StageStart, Detail: "decode spec: unexpected EOF"},
			wantText: "child: start: decode spec: unexpected EOF",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent, end := socketPair(t)
			ch := &child{conn: end}
			if code := ch.fail(tc.stage, tc.err); code != 125 {
				t.Errorf("fail returned %d, want 125", code)
			}
			got, _, err := parent.recv(make([]byte, maxMessage))
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != msgFailed {
				t.Fatalf("kind = %q, want %q", got.Kind, msgFailed)
			}
			ce := got.childError()
			if *ce != tc.want {
				t.Errorf("childError = %+v, want %+v", *ce, tc.want)
			}
			if ce.Error() != tc.wantText {
				t.Errorf("Error() = %q, want %q", ce.Error(), tc.wantText)
			}
			if tc.wantErrno != 0 && !errors.Is(ce, tc.wantErrno) {
				t.Errorf("errors.Is(%v, %v) = false", ce, tc.wantErrno)
			}
			if tc.wantErrno == 0 && errors.Unwrap(ce) != nil {
				t.Errorf("Unwrap() = %v, want nil without an errno", errors.Unwrap(ce))
			}
		})
	}
}

// Guards the message codec against what a broken or hostile init could
// send: every cut of a valid packet, trailing bytes, numbers beyond an
// int and flags other than 0 and 1 are errors, never a message.
func TestDecodeMessageRejects(t *testing.T) {
	full := encodeMessage(message{Kind: msgReady, Pid: 7, Times: []StageTime{{Stage: StageExec, Nanos: 5}}, Detail: "x"})
	if m, err := decodeMessage(full); err != nil || m.Pid != 7 || len(m.Times) != 1 || m.Times[0].Nanos != 5 {
		t.Fatalf("decode of a valid packet = %+v, %v", m, err)
	}
	for n := range len(full) {
		if m, err := decodeMessage(full[:n]); err == nil {
			t.Errorf("a packet cut to %d of %d bytes decoded as %+v", n, len(full), m)
		}
	}
	if _, err := decodeMessage(append(full[:len(full):len(full)], 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	big := &specWriter{}
	big.str(msgExit)
	for range 3 {
		big.str("")
	}
	big.uint(1 << 40) // errno
	if _, err := decodeMessage(big.b); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("errno 1<<40: err = %v, want out of range", err)
	}
	flag := &specWriter{}
	flag.str(msgExit)
	for range 3 {
		flag.str("")
	}
	flag.uint(0)
	flag.str("")
	flag.uint(2) // KernelOverlay
	if _, err := decodeMessage(flag.b); err == nil {
		t.Error("flag 2 accepted")
	}
}
