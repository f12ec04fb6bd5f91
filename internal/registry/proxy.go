package registry

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// maxChunk caps the throttle's chunk so that a fast rate still sleeps
// often enough to be smooth.
const maxChunk = 64 << 10

// throttleChunk is the fixed chunk size for a rate: a twentieth of a
// second's worth (at most maxChunk, at least one byte), so that the
// transfer advances in steps of about 50 ms and a test that kills a pull
// after some time catches it mid-layer.
func throttleChunk(bytesPerSecond int) int {
	return max(1, min(maxChunk, bytesPerSecond/20))
}

// ThrottledProxy listens on a free 127.0.0.1 port and forwards each
// connection to target, returning its address. The client-to-target
// direction is copied as fast as it comes; the target-to-client direction
// is read in chunks of at most throttleChunk(bytesPerSecond) bytes, each
// held for len(chunk)/bytesPerSecond seconds before it is sent, so the
// client gets the last of n bytes no sooner than n/bytesPerSecond seconds
// after the first left the target, whatever the load of the machine
// (sleeps overshoot, never undershoot). A client that
// disconnects mid-transfer only ends its own connection.
//
// The listener, every open connection and every goroutine are gone when
// the test's cleanups have run.
func ThrottledProxy(t testing.TB, target string, bytesPerSecond int) (addr string) {
	t.Helper()
	if bytesPerSecond <= 0 {
		t.Fatalf("throttled proxy: rate %d bytes/s: must be positive", bytesPerSecond)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("throttled proxy: %v", err)
	}
	p := &proxy{
		target: target,
		rate:   bytesPerSecond,
		chunk:  throttleChunk(bytesPerSecond),
		done:   make(chan struct{}),
		conns:  map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.serve(l)
	t.Cleanup(func() {
		close(p.done)
		l.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return l.Addr().String()
}

type proxy struct {
	target      string
	rate, chunk int
	done        chan struct{} // closed at cleanup: stop sleeping, accept nothing
	wg          sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open, closed by the cleanup
}

func (p *proxy) serve(l net.Listener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // listener closed by the cleanup
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers c for the cleanup; false means the cleanup has begun
// and c was closed instead.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		c.Close()
		return false
	default:
		p.conns[c] = struct{}{}
		return true
	}
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *proxy) handle(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return // the client sees its connection closed, as with a dead server
	}
	if !p.track(upstream) {
		return
	}
	defer p.untrack(upstream)

	up := make(chan struct{})
	go func() {
		defer close(up)
		_, err := io.Copy(upstream, client)
		if err == nil {
			// The client half-closed: pass it on and keep the response
			// flowing.
			closeWrite(upstream)
			return
		}
		// The client went away: abort both sides so the download stops.
		client.Close()
		upstream.Close()
	}()
	p.throttledCopy(client, upstream)
	// The response is over (or the client gone): end both sides.
	client.Close()
	upstream.Close()
	<-up
}

// throttledCopy sends src to dst in chunks, holding each chunk for as long
// as it takes at the proxy's rate before sending it. Sleeping before the
// write, not after, is what makes the bound hold for the client: the last
// byte arrives only after every chunk's sleep.
func (p *proxy) throttledCopy(dst io.Writer, src io.Reader) {
	buf := make([]byte, p.chunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			timer := time.NewTimer(time.Duration(n) * time.Second / time.Duration(p.rate))
			select {
			case <-timer.C:
			case <-p.done:
				timer.Stop()
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func closeWrite(c net.Conn) {
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
	}
}
