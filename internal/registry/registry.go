package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sandbox/internal/e2e"
)

// Bounds of Start. The registry answers in well under a second on an idle
// machine; 10 s leaves room for a loaded CI host without letting a broken
// binary hang the suite.
const (
	startAttempts = 5
	readyTimeout  = 10 * time.Second
	readyInterval = 50 * time.Millisecond
	stopTimeout   = 10 * time.Second
	logLimit      = 1 << 20
	// nonceHeader is set by our config on every response, so that a 200
	// from /v2/ proves that our process answered and not another server
	// that took the port first.
	nonceHeader = "X-Sandbox-Registry-Nonce"
)

// Registry is a docker-registry process serving plain HTTP on loopback.
type Registry struct {
	Addr    string // "127.0.0.1:PORT"
	Storage string // the filesystem driver's root directory

	nonce      string // value of nonceHeader in our responses
	cmd        *exec.Cmd
	log        *logBuffer
	exited     chan struct{} // closed once the process is reaped
	stopOnce   sync.Once
	stopErr    error
	stopCalled atomic.Bool
	killed     atomic.Bool // we sent the SIGKILL
}

// errPortTaken: the port picked was bound by someone else between our
// probe and the registry's listen; Start tries another.
var errPortTaken = errors.New("port taken")

// Start runs docker-registry on a free 127.0.0.1 port with storage under
// t.TempDir() and returns once GET /v2/ answers 200. The registry is
// stopped when the test ends. A missing binary skips the test, or fails it
// under SANDBOX_TEST_STRICT=1.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	e2e.RequireX(t, err == nil, "docker-registry not found on PATH (fix: apt-get install docker-registry): %v", err)

	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	if err := os.Mkdir(storage, 0o700); err != nil {
		t.Fatalf("registry: %v", err)
	}
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("registry: %v", err)
		}
		r, err := launch(bin, dir, storage, port)
		if err != nil {
			t.Fatalf("registry: %v", err)
		}
		err = r.waitReady()
		if err == nil {
			t.Cleanup(func() {
				if r.stopCalled.Load() {
					return // the test stopped it and saw the result
				}
				if err := r.Stop(); err != nil {
					t.Errorf("registry: %v", err)
				}
			})
			return r
		}
		// Stop's error only repeats that the attempt died, which err
		// already says; the log below says why.
		r.Stop()
		if errors.Is(err, errPortTaken) {
			t.Logf("registry: attempt %d: %s: %v; trying another port", attempt, r.Addr, err)
			continue
		}
		t.Fatalf("registry: %v\n--- registry log:\n%s", err, r.Log())
	}
	t.Fatalf("registry: no free port after %d attempts", startAttempts)
	return nil
}

// launch starts one registry process on port, which was free a moment ago.
func launch(bin, dir, storage string, port int) (*Registry, error) {
	nonce, err := randomHex()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// One file per attempt: a retry never rewrites a config that the
	// previous, dying process may still be reading.
	cfgPath := filepath.Join(dir, "config-"+strconv.Itoa(port)+".yml")
	if err := os.WriteFile(cfgPath, configYAML(addr, storage, nonce), 0o600); err != nil {
		return nil, err
	}

	r := &Registry{Addr: addr, Storage: storage, nonce: nonce, log: &logBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Env = childEnv(os.Environ())
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = sysProcAttr()
	// The pipes close when the process dies; the delay only bounds Wait if
	// something inherited them.
	r.cmd.WaitDelay = time.Second
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		r.cmd.Wait()
		close(r.exited)
	}()
	return r, nil
}

// configYAML is the registry's configuration (distribution's
// docs/configuration.md). Strings go through JSON quoting, which YAML
// reads as double-quoted scalars, so a temp dir with odd characters still
// parses.
func configYAML(addr, storage, nonce string) []byte {
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	return []byte(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ` + q(storage) + `
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ` + q(addr) + `
  secret: ` + q("testing-"+nonce) + `
  headers:
    ` + nonceHeader + `: [` + q(nonce) + `]
`)
}

// childEnv drops REGISTRY_* variables: distribution reads them as
// overrides of the config file (REGISTRY_HTTP_ADDR and friends), and a
// test's registry must not depend on the caller's environment.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			out = append(out, kv)
		}
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// waitReady polls GET /v2/ until our registry answers 200, the process
// exits, or readyTimeout passes.
func (r *Registry) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// A request to a port held by a silent squatter would otherwise sit
	// out the client timeout after our registry has already died.
	reqCtx, reqCancel := context.WithCancel(ctx)
	defer reqCancel()
	go func() {
		select {
		case <-r.exited:
			reqCancel()
		case <-reqCtx.Done():
		}
	}()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	var lastErr error
	for {
		select {
		case <-r.exited:
			if strings.Contains(r.Log(), "address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("docker-registry exited during start-up: %v", r.cmd.ProcessState)
		default:
		}
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, r.URL("/v2/"), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && resp.Header.Get(nonceHeader) == r.nonce:
				return nil
			case resp.StatusCode == http.StatusOK:
				// Another server answers on the port; ours failed to
				// bind and is on its way out.
				return errPortTaken
			}
			lastErr = fmt.Errorf("GET /v2/: %s", resp.Status)
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET http://%s/v2/ did not answer 200 within %v: %v", r.Addr, readyTimeout, lastErr)
		case <-r.exited:
		case <-time.After(readyInterval):
		}
	}
}

// URL returns the registry's address as an http URL with path appended:
// r.URL("/v2/_catalog").
func (r *Registry) URL(path string) string {
	return "http://" + r.Addr + path
}

// Log returns what the registry has written to stdout and stderr so far
// (its last MiB): warnings and errors only, access log off.
func (r *Registry) Log() string {
	return r.log.String()
}

// Stop kills the registry (SIGKILL to the pid Start got; the os package
// holds a pidfd, so a recycled pid cannot be hit) and waits for it to be
// reaped. It may be called mid-test and more than once; the cleanup Start
// registers then does nothing. The error says the registry had already
// died by itself, which a test that did not expect it should report, or
// that it could not be reaped.
func (r *Registry) Stop() error {
	r.stopCalled.Store(true)
	r.stopOnce.Do(func() { r.stopErr = r.stop() })
	return r.stopErr
}

func (r *Registry) stop() error {
	select {
	case <-r.exited:
	default:
		r.killed.Store(true)
		if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill docker-registry (pid %d): %w", r.cmd.Process.Pid, err)
		}
		select {
		case <-r.exited:
		case <-time.After(stopTimeout):
			return fmt.Errorf("docker-registry (pid %d) not reaped %v after SIGKILL", r.cmd.Process.Pid, stopTimeout)
		}
	}
	ws, _ := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if r.killed.Load() && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return nil
	}
	return fmt.Errorf("docker-registry (pid %d) exited by itself before Stop: %v\n--- registry log:\n%s", r.cmd.Process.Pid, r.cmd.ProcessState, r.Log())
}

// logBuffer keeps the last logLimit bytes written to it; the registry
// writes from its own goroutines in os/exec while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - logLimit; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
