package prespawn

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The handoff's detail is an error's text and may span lines; a packet
// without its two separators is refused.
func TestHandoffRoundTrip(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	want := handoff{Kind: "refused", Mounts: "abc123", Detail: "peer runs elsewhere\nsecond line"}
	if err := sendHandoff(fds[0], want); err != nil {
		t.Fatal(err)
	}
	got, passed, err := recvHandoff(fds[1])
	if err != nil || got != want || len(passed) != 0 {
		t.Fatalf("recvHandoff = %+v, %v, %v; want %+v", got, passed, err, want)
	}
	if _, err := unix.Write(fds[0], []byte("sandbox-without-separators")); err != nil {
		t.Fatal(err)
	}
	if got, _, err := recvHandoff(fds[1]); err == nil {
		t.Errorf("a packet without separators decoded as %+v", got)
	}
}
