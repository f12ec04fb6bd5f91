package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containers/storage/pkg/reexec"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"sandbox/image"
)

func main() {
	// containers/storage re-executes /proc/self/exe to apply layers in a
	// chroot (pkg/chrootarchive); those children must not get here.
	if reexec.Init() {
		return
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// globals are the options before the command.
type globals struct {
	syncFD   int
	root     string
	runRoot  string
	singleID bool
	quiet    bool
	debug    bool
}

// usageError is a mistake in the helper's own arguments: a bug in the
// caller, since users reach it only through sandbox.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g globals
	fs := pflag.NewFlagSet("sandbox-store", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.IntVar(&g.syncFD, "sync-fd", -1, "wait on this fd until the id maps are written")
	fs.StringVar(&g.root, "root", "", "graph root")
	fs.StringVar(&g.runRoot, "runroot", "", "run root")
	fs.BoolVar(&g.singleID, "single-id", false, "only the caller's own id is mapped")
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "no progress")
	fs.BoolVar(&g.debug, "debug", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return answerError(stdout, &usageError{msg: err.Error()})
	}
	if g.syncFD >= 0 {
		if err := waitForMaps(g.syncFD); err != nil {
			fmt.Fprintf(stderr, "sandbox-store: %v\n", err)
			return 1
		}
	}
	if fs.NArg() == 0 {
		return answerError(stdout, &usageError{msg: "no command"})
	}
	log := slog.New(slog.DiscardHandler)
	if g.debug {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		// containers/storage and containers/image log through logrus.
		logrus.SetOutput(stderr)
		logrus.SetLevel(logrus.DebugLevel)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := &cmd{g: g, stdin: stdin, stderr: stderr, log: log}
	if !g.quiet {
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			c.progress = stderr
			if w, _, err := term.GetSize(int(f.Fd())); err != nil || w == 0 {
				// A terminal of no width (a pty nobody sized) shows no
				// bars: one line per blob instead, as without a terminal.
				c.progress = struct{ io.Writer }{stderr}
			}
		}
	}
	out, err := c.dispatch(ctx, fs.Arg(0), fs.Args()[1:])
	if err != nil {
		return answerError(stdout, err)
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return 1
	}
	return 0
}

// waitForMaps blocks until the parent has written our id maps: one byte
// on fd means go on, EOF means the parent failed and will say why.
func waitForMaps(fd int) error {
	f := os.NewFile(uintptr(fd), "sync")
	defer f.Close()
	b := make([]byte, 1)
	n, err := f.Read(b)
	if n == 1 {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return errors.New("parent closed the sync pipe before the id maps were written")
	}
	return fmt.Errorf("sync pipe: %w", err)
}

type cmd struct {
	g        globals
	stdin    io.Reader
	stderr   io.Writer
	progress io.Writer
	log      *slog.Logger
}

// open opens the store the globals name.
func (c *cmd) open() (*image.Store, error) {
	if c.g.root == "" || c.g.runRoot == "" {
		return nil, &usageError{msg: "--root and --runroot are required"}
	}
	return image.Open(image.Options{Root: c.g.root, RunRoot: c.g.runRoot, SingleID: c.g.singleID, Log: c.log})
}

// remoteFlags adds the flags of commands that talk to a registry.
func remoteFlags(fs *pflag.FlagSet, r *image.Remote, regs *[]string) {
	fs.BoolVar(&r.TLSVerify, "tls-verify", true, "verify certificates; false also allows plain HTTP")
	fs.StringVar(&r.AuthFile, "authfile", "", "auth file")
	fs.StringArrayVar(regs, "registry", nil, "search list for short names (repeatable)")
}

// parseRegistries is parse for commands that look names up: with
// --registry, and the search list it gives (else the configuration's).
func parseRegistries(name string, fs *pflag.FlagSet, args []string, nargs int, variadic bool) (a, regs []string, err error) {
	fs.StringArrayVar(&regs, "registry", nil, "search list for short names (repeatable)")
	if a, err = parse(name, fs, args, nargs, variadic); err != nil {
		return nil, nil, err
	}
	if regs, err = registries(regs); err != nil {
		return nil, nil, err
	}
	return a, regs, nil
}

func parse(name string, fs *pflag.FlagSet, args []string, nargs int, variadic bool) ([]string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{msg: name + ": " + err.Error()}
	}
	if fs.NArg() < nargs || (!variadic && fs.NArg() != nargs) {
		return nil, &usageError{msg: fmt.Sprintf("%s: want %d argument(s), got %q", name, nargs, fs.Args())}
	}
	return fs.Args(), nil
}

// result is the answer of commands that changed the store.
type result struct {
	Images   []image.Summary `json:"images,omitempty"`
	Untagged []string        `json:"untagged,omitempty"`
	Deleted  []string        `json:"deleted,omitempty"`
	Notices  []image.Notice  `json:"notices,omitempty"`
	AuthFile string          `json:"authFile,omitempty"`
}

func (c *cmd) dispatch(ctx context.Context, name string, args []string) (any, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	var r image.Remote
	var regs []string
	switch name {
	case "pull":
		remoteFlags(fs, &r, &regs)
		a, err := parse(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		// The reference is checked before the store is even opened.
		if r.Registries, err = registries(regs); err != nil {
			return nil, err
		}
		if _, err := image.Candidates(a[0], r.Registries); err != nil {
			return nil, err
		}
		r.Progress = c.progress
		return c.withStore(func(st *image.Store) (any, error) {
			s, err := st.Pull(ctx, a[0], r)
			if err != nil {
				return nil, err
			}
			return result{Images: []image.Summary{*s}, Notices: st.Notices}, nil
		})
	case "push":
		remoteFlags(fs, &r, &regs)
		a, err := parse(name, fs, args, 2, false)
		if err != nil {
			return nil, err
		}
		if r.Registries, err = registries(regs); err != nil {
			return nil, err
		}
		r.Progress = c.progress
		return c.withStore(func(st *image.Store) (any, error) {
			return result{}, st.Push(ctx, a[0], a[1], r)
		})
	case "images":
		if _, err := parse(name, fs, args, 0, false); err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) { return st.List() })
	case "rmi":
		force := fs.BoolP("force", "f", false, "remove the image whatever names it has, and containers using it")
		a, regs, err := parseRegistries(name, fs, args, 1, true)
		if err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) {
			var res result
			for _, n := range a {
				u, d, err := st.Remove(n, *force, regs)
				if err != nil {
					return nil, err
				}
				res.Untagged = append(res.Untagged, u...)
				res.Deleted = append(res.Deleted, d...)
			}
			return res, nil
		})
	case "tag":
		a, regs, err := parseRegistries(name, fs, args, 2, false)
		if err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) { return result{}, st.Tag(a[0], a[1], regs) })
	case "inspect":
		a, regs, err := parseRegistries(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) { return st.Inspect(ctx, a[0], regs) })
	case "load":
		file := fs.StringP("input", "i", "", "archive to read")
		if _, err := parse(name, fs, args, 0, false); err != nil {
			return nil, err
		}
		if *file == "" {
			return nil, &usageError{msg: "load: -i FILE is required"}
		}
		return c.withStore(func(st *image.Store) (any, error) {
			imgs, err := st.Load(ctx, *file, c.progress)
			if err != nil {
				return nil, err
			}
			return result{Images: imgs, Notices: st.Notices}, nil
		})
	case "save":
		file := fs.StringP("output", "o", "", "archive to write")
		format := fs.String("format", "docker-archive", "docker-archive or oci-archive")
		a, regs, err := parseRegistries(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		if *file == "" {
			return nil, &usageError{msg: "save: -o FILE is required"}
		}
		return c.withStore(func(st *image.Store) (any, error) { return result{}, st.Save(ctx, a[0], *file, *format, regs) })
	case "import":
		a, err := parse(name, fs, args, 2, false)
		if err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) {
			s, err := st.Import(ctx, a[0], a[1])
			if err != nil {
				return nil, err
			}
			return result{Images: []image.Summary{*s}, Notices: st.Notices}, nil
		})
	case "login":
		remoteFlags(fs, &r, &regs)
		user := fs.StringP("username", "u", "", "user name")
		a, err := parse(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		pass, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read password: %w", err)
		}
		path, err := image.Login(ctx, a[0], *user, strings.TrimRight(pass, "\r\n"), r)
		if err != nil {
			return nil, err
		}
		return result{AuthFile: path}, nil
	case "logout":
		remoteFlags(fs, &r, &regs)
		a, err := parse(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		return result{}, image.Logout(a[0], r)
	case "prepare":
		cname := fs.String("name", "", "name of the storage container")
		rmLock := fs.String("rm-lock", "", "lock file the --rm run holds (below the graph root's sandbox-runs)")
		a, regs, err := parseRegistries(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) { return st.Prepare(ctx, a[0], *cname, *rmLock, regs) })
	case "remove":
		a, err := parse(name, fs, args, 1, false)
		if err != nil {
			return nil, err
		}
		return c.withStore(func(st *image.Store) (any, error) { return result{}, st.RemoveContainer(a[0]) })
	}
	return nil, &usageError{msg: fmt.Sprintf("unknown command %q", name)}
}

// withStore opens the store, runs f and closes the store.
func (c *cmd) withStore(f func(*image.Store) (any, error)) (any, error) {
	st, err := c.open()
	if err != nil {
		return nil, err
	}
	out, err := f(st)
	if cerr := st.Close(); err == nil && cerr != nil {
		c.log.Debug("close store", "err", cerr)
	}
	return out, err
}

// registries is the search list: the flag's when given, else the config
// file's, else image.DefaultRegistries.
func registries(flag []string) ([]string, error) {
	if len(flag) > 0 {
		return flag, nil
	}
	cfg, err := readConfig(configPath())
	if err != nil {
		return nil, err
	}
	if cfg.Registries != nil {
		return cfg.Registries, nil
	}
	return image.DefaultRegistries, nil
}

// configPath is $XDG_CONFIG_HOME/sandbox/images.toml.
func configPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "sandbox", "images.toml")
}

// exitCode is what answerError returns: 2 for our own usage errors.
func exitCode(err error) int {
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}
