package prespawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"sandbox/userns"
)

// ServerConfig is what a pre-spawner needs.
type ServerConfig struct {
	// Dir is the checked socket directory (rundir.Open).
	Dir *os.File
	// Key is the fingerprint of the run that started the pre-spawner;
	// it serves only if its own fingerprint is the same.
	Key string
	// Extra is the spawn configuration as the fingerprint takes it.
	Extra []string
	Spawn userns.SpawnConfig
	// Idle is how long it waits for a run before it exits.
	Idle time.Duration
	Log  *slog.Logger
}

// ErrContext: the pre-spawner does not run in the context of the run that
// started it (an exec-time LSM transition, say), so it would serve nobody.
var ErrContext = errors.New("pre-spawner: its context differs from the run that started it")

// Serve runs a pre-spawner until it has been idle for c.Idle or ctx ends.
// It returns nil when another pre-spawner already serves the key.
func Serve(ctx context.Context, c ServerConfig) error {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	own, err := Fingerprint("/proc/self", c.Extra)
	if err != nil {
		return err
	}
	if own != c.Key {
		return ErrContext
	}
	dirfd := int(c.Dir.Fd())
	lock, err := unix.Openat(dirfd, lockName(c.Key), unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer unix.Close(lock)
	if err := unix.Flock(lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if err == unix.EWOULDBLOCK {
			return nil // another one serves this key
		}
		return fmt.Errorf("lock: %w", err)
	}
	// Holding the lock, any socket of this name is a dead one's.
	unix.Unlinkat(dirfd, socketName(c.Key), 0)
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: inDir(c.Dir, socketName(c.Key))}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	defer unix.Unlinkat(dirfd, socketName(c.Key), 0)
	if err := unix.Listen(lfd, 16); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Debug("prespawn: serving", "key", c.Key, "idle", c.Idle)

	var (
		warm   *userns.Spawned
		mounts string
		// held are runs that took a sandbox and are not over yet; the
		// next one is spawned when they are, or when a run asks for it.
		held     []heldRun
		lastTake = time.Now()
		// spec is the speculative spec of the last run that sent its
		// own: the next init builds that root ahead.
		spec []byte
		buf  = make([]byte, maxSpec)
	)
	defer func() {
		if warm != nil {
			warm.Kill()
		}
		for _, h := range held {
			h.close()
		}
	}()
	var respawn time.Time // when the next init is due, with none warm
	for {
		if warm == nil && len(held) == 0 && !time.Now().Before(respawn) {
			if warm, mounts, err = spawnWarm(ctx, c.Spawn, spec); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		wake := lastTake.Add(c.Idle)
		if len(held) > 0 {
			wake = now.Add(time.Second) // to notice ctx
		}
		if warm == nil && len(held) == 0 {
			wake = earliest(wake, respawn)
		}
		// Per held run: its connection (while open), then its pidfd.
		pfds := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}
		for _, h := range held {
			pfds = append(pfds, unix.PollFd{Fd: int32(h.fd), Events: unix.POLLIN | unix.POLLRDHUP},
				unix.PollFd{Fd: int32(h.pidfd), Events: unix.POLLIN})
			wake = earliest(wake, h.until)
		}
		ms := max(min(time.Until(wake).Milliseconds()+1, 1000), 0)
		_, err := unix.Poll(pfds, int(ms))
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("poll: %w", err)
		}
		now = time.Now()
		kept := held[:0]
		for i, h := range held {
			conn, proc := pfds[1+2*i].Revents, pfds[2+2*i].Revents
			if conn != 0 && h.fd >= 0 {
				// The run is over and says how (Taken.Done).
				if b := recvSpec(h.fd, buf); b != nil {
					spec = b
				}
				unix.Close(h.fd)
				h.fd = -1
			}
			// Over, and for the next init to be spawned, its process must
			// be gone too: spawning while it exits slows its exit.
			if proc != 0 || (h.fd < 0 && h.pidfd < 0) || now.After(h.until) {
				h.close()
				respawn = now.Add(respawnDelay)
				continue
			}
			kept = append(kept, h)
		}
		held = kept
		if pfds[0].Revents&unix.POLLIN != 0 {
			cfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if err != nil {
				if err == unix.EINTR || err == unix.EAGAIN || err == unix.ECONNABORTED {
					continue
				}
				return fmt.Errorf("accept: %w", err)
			}
			if warm == nil && len(held) == 0 {
				// The last run ended as this one came: nothing competes
				// for the CPU, so it waits for the next sandbox.
				if warm, mounts, err = spawnWarm(ctx, c.Spawn, spec); err != nil {
					unix.Close(cfd)
					return err
				}
			}
			if warm == nil {
				// Others hold theirs: spawning one now would take as long
				// as the run spawning its own, and both would compete for
				// the CPU. It goes direct; ours comes when they are over.
				sendHandoff(cfd, handoff{Kind: "busy"})
				unix.Close(cfd)
				continue
			}
			handed, pidfd, err := serveOne(cfd, c.Key, c.Extra, warm, mounts)
			if err != nil {
				log.Debug("prespawn: refused a connection", "err", err)
			}
			if !handed {
				unix.Close(cfd)
				continue
			}
			warm = nil
			lastTake = now
			// The run keeps the connection until it is over: spawning
			// the next init meanwhile would take the CPU its set-up and
			// teardown need. Bounded, for long runs.
			held = append(held, heldRun{fd: cfd, pidfd: pidfd, until: now.Add(holdBound)})
			continue
		}
		if len(held) == 0 && now.Sub(lastTake) >= c.Idle {
			log.Debug("prespawn: idle, exiting")
			return nil
		}
	}
}

// heldRun is a run that took a sandbox: its connection, until it closes,
// and a pidfd of its process (-1 without SO_PEERPIDFD, before Linux 6.5).
type heldRun struct {
	fd, pidfd int
	until     time.Time
}

func (h heldRun) close() {
	for _, fd := range []int{h.fd, h.pidfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// respawnDelay is how long after a run's end the next init is spawned
// (unless a run asks for it first): the exit of the run's processes and
// the kernel's teardown of its sandbox are done by then, and nothing
// slows them.
const respawnDelay = 15 * time.Millisecond

// holdBound bounds how long a run may hold the pre-spawner back.
const holdBound = 2 * time.Second

// maxSpec bounds the spec a run sends when it is over.
const maxSpec = 256 << 10

// recvSpec reads the spec a run sends when it is over (Taken.Done), as a
// speculative spec, or nil: the run ended without one, it was too large,
// or it is not one a root is built ahead from.
func recvSpec(fd int, buf []byte) []byte {
	// Called once poll said readable: this does not block.
	n, flags, fds, err := userns.RecvWithFDs(fd, buf, 0)
	closeAll(fds)
	if err != nil || n == 0 || flags&unix.MSG_TRUNC != 0 {
		return nil
	}
	b, ok, err := userns.Speculation(buf[:n])
	if err != nil || !ok {
		return nil
	}
	return b
}

// spawnWarm spawns an init and takes the hash of the mount table it
// copied: read before the clone and again after the maps are written, and
// spawned again if a mount came or went in between. With spec, the init
// builds that root ahead (Spawned.Speculate).
func spawnWarm(ctx context.Context, c userns.SpawnConfig, spec []byte) (*userns.Spawned, string, error) {
	for range 3 {
		before, err := MountsHash("/proc/self")
		if err != nil {
			return nil, "", err
		}
		sp, err := userns.Spawn(ctx, c, nil, userns.Options{})
		if err != nil {
			return nil, "", err
		}
		after, err := MountsHash("/proc/self")
		if err == nil && after == before && (spec == nil || sp.Speculate(spec) == nil) {
			return sp, before, nil
		}
		sp.Kill()
	}
	return nil, "", errors.New("the mount table keeps changing")
}

// serveOne hands warm to the process on cfd if it runs in our context.
// When it did, pidfd is the process's (the caller's to close), or -1.
func serveOne(cfd int, key string, extra []string, warm *userns.Spawned, mounts string) (handed bool, pidfd int, err error) {
	p, err := peerOf(cfd)
	if err != nil {
		return false, -1, err
	}
	defer p.close()
	if err := p.matches(key, extra); err != nil {
		sendHandoff(cfd, handoff{Kind: "refused", Detail: err.Error()})
		return false, -1, err
	}
	files, err := warm.HandOff()
	if err != nil {
		return false, -1, err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	err = sendHandoff(cfd, handoff{Kind: "sandbox", Mounts: mounts}, fds...)
	for _, f := range files {
		f.Close()
	}
	// Handed off or not, this init is gone from here: if the send failed,
	// closing our ends made it exit.
	pidfd = -1
	if p.pidfd >= 0 {
		pidfd, _ = unix.FcntlInt(uintptr(p.pidfd), unix.F_DUPFD_CLOEXEC, 3)
	}
	return true, pidfd, err
}
