package registry

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestThrottleChunk(t *testing.T) {
	tests := []struct {
		rate, want int
	}{
		{1, 1},
		{19, 1},
		{20, 1},
		{1000, 50},
		{64 << 10, (64 << 10) / 20},
		{20 * maxChunk, maxChunk},
		{100 << 20, maxChunk},
	}
	for _, tt := range tests {
		if got := throttleChunk(tt.rate); got != tt.want {
			t.Errorf("throttleChunk(%d) = %d, want %d", tt.rate, got, tt.want)
		}
	}
}

// A client that hangs up mid-download ends its own connection only: the
// proxy keeps serving, which is what a test that kills a pull and retries
// needs. No registry involved, so this runs everywhere.
func TestThrottledProxyClientAbort(t *testing.T) {
	big := testBlob(1 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(big)
		default:
			io.WriteString(w, "small\n")
		}
	}))
	t.Cleanup(srv.Close)
	addr := ThrottledProxy(t, srv.Listener.Addr().String(), 64<<10)

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	// 16 KiB of 1 MiB at 64 KiB/s: a quarter of a second in, 15 s from
	// the end; then the "pull" dies.
	if _, err := io.ReadFull(resp.Body, make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	c.Close()

	_, body := get(t, "http://"+addr+"/small", "", http.StatusOK)
	if string(body) != "small\n" {
		t.Errorf("after an aborted download: %q, want %q", body, "small\n")
	}
}
