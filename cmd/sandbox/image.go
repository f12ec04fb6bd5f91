package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"sandbox/storeclient"
)

// The image commands forward to the store helper, sandbox-store
// (storeclient): this binary links neither containers/image nor
// containers/storage, which would slow every `sandbox run`.

// storeFlags are the flags every image command has.
type storeFlags struct {
	root, runRoot string
	quiet, debug  bool
}

// storeCommand is the flag set of image command name with the store's
// flags on it; the command adds its own.
func storeCommand(name string) (*pflag.FlagSet, *storeFlags) {
	s := &storeFlags{}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	s.add(fs)
	return fs, s
}

func (s *storeFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&s.root, "root", "", "image store directory (default $XDG_DATA_HOME/sandbox/storage)")
	fs.StringVar(&s.runRoot, "runroot", "", "image store run-time directory (default in $XDG_RUNTIME_DIR/sandbox)")
	fs.BoolVar(&s.debug, "debug", false, "log what the store helper does")
}

// remoteFlags are the flags of commands that talk to a registry.
type remoteFlags struct {
	tlsVerify  bool
	authFile   string
	registries []string
}

func (r *remoteFlags) add(fs *pflag.FlagSet, search bool) {
	fs.BoolVar(&r.tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate; false allows plain HTTP")
	fs.StringVar(&r.authFile, "authfile", "", "credentials file (default ${XDG_RUNTIME_DIR}/containers/auth.json)")
	if search {
		fs.StringArrayVar(&r.registries, "registry", nil, "registry to search for a short name, in order (repeatable; default from ~/.config/sandbox/images.toml, else docker.io)")
	}
}

func (r *remoteFlags) args() []string {
	a := []string{fmt.Sprintf("--tls-verify=%t", r.tlsVerify)}
	if r.authFile != "" {
		a = append(a, "--authfile", r.authFile)
	}
	return append(a, registryArgs(r.registries)...)
}

func registryArgs(regs []string) []string {
	var a []string
	for _, r := range regs {
		a = append(a, "--registry", r)
	}
	return a
}

// parseFlags parses args with fs and checks the number of arguments.
func parseFlags(e *env, fs *pflag.FlagSet, name, usage string, args []string, min, max int) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(e.stdout, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.Usage()
			return nil, errHelp
		}
		return nil, &usageError{msg: err.Error(), fix: "sandbox help " + name}
	}
	n := fs.NArg()
	if n < min || (max >= 0 && n > max) {
		want := fmt.Sprintf("%d argument(s)", min)
		if max < 0 {
			want = fmt.Sprintf("at least %d argument(s)", min)
		}
		return nil, &usageError{msg: fmt.Sprintf("%s takes %s, got %d", name, want, n), fix: "sandbox help " + name}
	}
	return fs.Args(), nil
}

// callStore runs one helper command and decodes its answer into out.
func callStore(e *env, s *storeFlags, out any, stdin *os.File, args ...string) (storeclient.Mapping, error) {
	uid, gid := os.Getuid(), os.Getgid()
	c := storeclient.Config{
		Root: s.root, RunRoot: s.runRoot, Quiet: s.quiet, Debug: s.debug,
		Stdin: stdin, Stderr: stderrFile(e),
		User: userName(uint32(uid)), UID: uint32(uid), GID: uint32(gid),
		PathEnv: os.Getenv("PATH"), Log: e.log,
	}
	var err error
	if c.Root, c.RunRoot, err = storeclient.ResolveStore(c.Root, c.RunRoot, uid); err != nil {
		return storeclient.Mapping{}, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return storeclient.Run(ctx, c, out, args...)
}

// stderrFile is the helper's stderr: ours when it is a file (progress
// bars need the terminal), else nothing.
func stderrFile(e *env) *os.File {
	if f, ok := e.stderr.(*os.File); ok {
		return f
	}
	return nil
}

// storeAnswer is the helper's answer to commands that change the store.
type storeAnswer struct {
	Images   []imageSummary `json:"images"`
	Untagged []string       `json:"untagged"`
	Deleted  []string       `json:"deleted"`
	Notices  []struct {
		Layer, Entry, What string
	} `json:"notices"`
	AuthFile string `json:"authFile"`
}

type imageSummary struct {
	ID      string    `json:"id"`
	Names   []string  `json:"names"`
	Digest  string    `json:"digest,omitempty"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
}

// report prints what the store neutralised, and says when ownership in
// the store is collapsed onto the caller: never silently.
func report(e *env, m storeclient.Mapping, a *storeAnswer) {
	if !m.Full && m.UIDs != nil {
		fmt.Fprintln(e.stderr, singleIDNotice(m.Reason))
	}
	if a == nil {
		return
	}
	for _, n := range a.Notices {
		fmt.Fprintf(e.stderr, "sandbox: notice: layer %s: %s: %s\n", shortID(strings.TrimPrefix(n.Layer, "sha256:")), n.Entry, n.What)
	}
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

const pullUsage = `Usage: sandbox pull [OPTIONS] IMAGE

Fetch IMAGE (REGISTRY/NAME[:TAG][@DIGEST]) into the image store and print
its id. A name without a registry ("busybox") is looked up in the search
list: --registry, else registries in ~/.config/sandbox/images.toml, else
docker.io alone.

Options:
      --tls-verify=BOOL   require HTTPS with a verified certificate (default true)
      --authfile FILE     credentials file (default ${XDG_RUNTIME_DIR}/containers/auth.json)
      --registry HOST     search HOST for a short name (repeatable, in order)
  -q, --quiet             no progress output
      --root DIR          image store (default ~/.local/share/sandbox/storage)
      --runroot DIR       run-time directory of the store
`

func cmdPull(e *env, args []string) (int, error) {
	var r remoteFlags
	fs, s := storeCommand("pull")
	r.add(fs, true)
	fs.BoolVarP(&s.quiet, "quiet", "q", false, "no progress output")
	a, err := parseFlags(e, fs, "pull", pullUsage, args, 1, 1)
	if err != nil {
		return 0, err
	}
	var ans storeAnswer
	m, err := callStore(e, s, &ans, nil, append(append([]string{"pull"}, r.args()...), a[0])...)
	if err != nil {
		return 0, err
	}
	report(e, m, &ans)
	for _, im := range ans.Images {
		fmt.Fprintln(e.stdout, im.ID)
	}
	return 0, nil
}

const pushUsage = `Usage: sandbox push [OPTIONS] IMAGE DESTINATION

Copy a local IMAGE to DESTINATION, a registry reference that names its
registry (registry.example.com/team/app:1.0).

Options:
      --tls-verify=BOOL   require HTTPS with a verified certificate (default true)
      --authfile FILE     credentials file
  -q, --quiet             no progress output
      --root DIR, --runroot DIR   image store
`

func cmdPush(e *env, args []string) (int, error) {
	var r remoteFlags
	fs, s := storeCommand("push")
	r.add(fs, false)
	fs.BoolVarP(&s.quiet, "quiet", "q", false, "no progress output")
	a, err := parseFlags(e, fs, "push", pushUsage, args, 2, 2)
	if err != nil {
		return 0, err
	}
	_, err = callStore(e, s, nil, nil, append(append([]string{"push"}, r.args()...), a[0], a[1])...)
	return 0, err
}

const imagesUsage = `Usage: sandbox images [OPTIONS]

List the images in the store, newest first.

Options:
      --format table|json   output format (default table)
      --root DIR, --runroot DIR   image store
`

func cmdImages(e *env, args []string) (int, error) {
	fs, s := storeCommand("images")
	format := fs.String("format", "table", "table or json")
	if _, err := parseFlags(e, fs, "images", imagesUsage, args, 0, 0); err != nil {
		return 0, err
	}
	if *format != "table" && *format != "json" {
		return 0, &usageError{msg: fmt.Sprintf("invalid --format %q: want table or json", *format), fix: "sandbox images --format json"}
	}
	var list []imageSummary
	if _, err := callStore(e, s, &list, nil, "images"); err != nil {
		return 0, err
	}
	if *format == "json" {
		return 0, writeJSON(e.stdout, list)
	}
	writeImageTable(e.stdout, list, time.Now())
	return 0, nil
}

// writeImageTable prints one line per name (an image without a name as
// <none>), as podman images does.
func writeImageTable(w io.Writer, list []imageSummary, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	for _, im := range list {
		names := im.Names
		if len(names) == 0 {
			names = []string{"<none>:<none>"}
		}
		sorted := append([]string(nil), names...)
		sort.Strings(sorted)
		for _, n := range sorted {
			repo, tag := splitName(n)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", repo, tag, shortID(im.ID), ago(now, im.Created), humanSize(im.Size))
		}
	}
	tw.Flush()
}

// splitName splits "host/repo:tag" at the tag's colon (not a port's).
func splitName(n string) (repo, tag string) {
	if i := strings.LastIndex(n, "@"); i >= 0 {
		return n[:i], n[i+1:]
	}
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, "<none>"
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "unknown"
	case d < time.Minute:
		return "less than a minute ago"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	case d < 2*365*24*time.Hour:
		return plural(int(d/(30*24*time.Hour)), "month") + " ago"
	}
	return plural(int(d/(365*24*time.Hour)), "year") + " ago"
}

func humanSize(n int64) string {
	if n < 0 {
		return "unknown"
	}
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.3g %s", f, units[i])
}

const rmiUsage = `Usage: sandbox rmi [OPTIONS] IMAGE...

Remove images from the store. A name removes that name; the image and
its layers go with its last name. An id removes the image whatever its
names.

Options:
  -f, --force    remove the image with all its names, and the storage containers using it
      --root DIR, --runroot DIR   image store
`

func cmdRmi(e *env, args []string) (int, error) {
	fs, s := storeCommand("rmi")
	force := fs.BoolP("force", "f", false, "")
	a, err := parseFlags(e, fs, "rmi", rmiUsage, args, 1, -1)
	if err != nil {
		return 0, err
	}
	helper := []string{"rmi"}
	if *force {
		helper = append(helper, "--force")
	}
	var ans storeAnswer
	if _, err := callStore(e, s, &ans, nil, append(helper, a...)...); err != nil {
		return 0, err
	}
	for _, n := range ans.Untagged {
		fmt.Fprintln(e.stdout, "Untagged: "+n)
	}
	for _, id := range ans.Deleted {
		fmt.Fprintln(e.stdout, "Deleted: "+id)
	}
	return 0, nil
}

const tagUsage = `Usage: sandbox tag [OPTIONS] IMAGE NAME

Give a local IMAGE another NAME; a NAME without a registry becomes
localhost/NAME.

Options:
      --root DIR, --runroot DIR   image store
`

func cmdTag(e *env, args []string) (int, error) {
	fs, s := storeCommand("tag")
	a, err := parseFlags(e, fs, "tag", tagUsage, args, 2, 2)
	if err != nil {
		return 0, err
	}
	_, err = callStore(e, s, nil, nil, "tag", a[0], a[1])
	return 0, err
}

const imageUsage = `Usage: sandbox image inspect [OPTIONS] IMAGE

Print a local image's id, names, digest, size, config (Entrypoint, Cmd,
Env, WorkingDir, User, Labels) and layers as JSON.

Options:
      --root DIR, --runroot DIR   image store
`

func cmdImage(e *env, args []string) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, imageUsage)
		if len(args) == 0 {
			return 0, &usageError{msg: "image needs a subcommand", fix: "sandbox image inspect IMAGE"}
		}
		return 0, errHelp
	}
	if args[0] != "inspect" {
		return 0, &usageError{msg: fmt.Sprintf("unknown image subcommand %q", args[0]), fix: "sandbox image inspect IMAGE"}
	}
	fs, s := storeCommand("image inspect")
	a, err := parseFlags(e, fs, "image", imageUsage, args[1:], 1, 1)
	if err != nil {
		return 0, err
	}
	var details map[string]any
	if _, err := callStore(e, s, &details, nil, "inspect", a[0]); err != nil {
		return 0, err
	}
	return 0, writeJSON(e.stdout, details)
}

const loadUsage = `Usage: sandbox load [OPTIONS] -i FILE

Read the images of a docker-archive or oci-archive FILE into the store.

Options:
  -i, --input FILE   the archive
      --root DIR, --runroot DIR   image store
`

func cmdLoad(e *env, args []string) (int, error) {
	fs, s := storeCommand("load")
	input := fs.StringP("input", "i", "", "")
	if _, err := parseFlags(e, fs, "load", loadUsage, args, 0, 0); err != nil {
		return 0, err
	}
	if *input == "" {
		return 0, &usageError{msg: "load needs -i FILE", fix: "sandbox load -i image.tar"}
	}
	var ans storeAnswer
	m, err := callStore(e, s, &ans, nil, "load", "-i", *input)
	if err != nil {
		return 0, err
	}
	report(e, m, &ans)
	for _, im := range ans.Images {
		name := shortID(im.ID)
		if len(im.Names) > 0 {
			name = strings.Join(im.Names, ", ")
		}
		fmt.Fprintln(e.stdout, "Loaded image: "+name)
	}
	return 0, nil
}

const saveUsage = `Usage: sandbox save [OPTIONS] -o FILE IMAGE

Write a local IMAGE to FILE.

Options:
  -o, --output FILE    the archive to write
      --format FORMAT  docker-archive (default) or oci-archive
      --root DIR, --runroot DIR   image store
`

func cmdSave(e *env, args []string) (int, error) {
	fs, s := storeCommand("save")
	output := fs.StringP("output", "o", "", "")
	format := fs.String("format", "docker-archive", "")
	a, err := parseFlags(e, fs, "save", saveUsage, args, 1, 1)
	if err != nil {
		return 0, err
	}
	if *output == "" {
		return 0, &usageError{msg: "save needs -o FILE", fix: "sandbox save -o image.tar IMAGE"}
	}
	if *format != "docker-archive" && *format != "oci-archive" {
		return 0, &usageError{msg: fmt.Sprintf("invalid --format %q: want docker-archive or oci-archive", *format), fix: "sandbox save --format oci-archive -o image.tar IMAGE"}
	}
	_, err = callStore(e, s, nil, nil, "save", "-o", *output, "--format", *format, a[0])
	return 0, err
}

const importUsage = `Usage: sandbox import [OPTIONS] ROOTFS.tar NAME

Make an image of one layer from a root file system tarball, named
localhost/NAME unless NAME gives a registry, and print its id.

Options:
      --root DIR, --runroot DIR   image store
`

func cmdImport(e *env, args []string) (int, error) {
	fs, s := storeCommand("import")
	a, err := parseFlags(e, fs, "import", importUsage, args, 2, 2)
	if err != nil {
		return 0, err
	}
	var ans storeAnswer
	m, err := callStore(e, s, &ans, nil, "import", a[0], a[1])
	if err != nil {
		return 0, err
	}
	report(e, m, &ans)
	for _, im := range ans.Images {
		fmt.Fprintln(e.stdout, im.ID)
	}
	return 0, nil
}

const loginUsage = `Usage: sandbox login [OPTIONS] REGISTRY

Check a user name and password with REGISTRY and store them in the
credentials file for pull and push. The password is read from stdin with
--password-stdin, else asked for on the terminal.

Options:
  -u, --username USER    user name
      --password-stdin   read the password from stdin
      --tls-verify=BOOL  require HTTPS with a verified certificate (default true)
      --authfile FILE    credentials file (default ${XDG_RUNTIME_DIR}/containers/auth.json)
`

func cmdLogin(e *env, args []string) (int, error) {
	var r remoteFlags
	fs, s := storeCommand("login")
	r.add(fs, false)
	user := fs.StringP("username", "u", "", "")
	passStdin := fs.Bool("password-stdin", false, "")
	a, err := parseFlags(e, fs, "login", loginUsage, args, 1, 1)
	if err != nil {
		return 0, err
	}
	var pass []byte
	switch {
	case *passStdin:
		if e.stdin == nil {
			return 0, &usageError{msg: "--password-stdin: no stdin", fix: "echo \"$PASSWORD\" | sandbox login --password-stdin -u USER REGISTRY"}
		}
		pass, err = io.ReadAll(io.LimitReader(e.stdin, 1<<20))
		if err != nil {
			return 0, err
		}
		pass = []byte(strings.TrimRight(string(pass), "\r\n"))
	case e.stdin != nil && term.IsTerminal(int(e.stdin.Fd())):
		if *user == "" {
			fmt.Fprint(e.stderr, "Username: ")
			line, err := readLine(e.stdin)
			if err != nil {
				return 0, err
			}
			*user = line
		}
		fmt.Fprint(e.stderr, "Password: ")
		pass, err = term.ReadPassword(int(e.stdin.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return 0, err
		}
	default:
		return 0, &usageError{msg: "login needs a password: stdin is not a terminal", fix: "echo \"$PASSWORD\" | sandbox login --password-stdin -u USER " + a[0]}
	}
	if *user == "" {
		return 0, &usageError{msg: "login needs a user name", fix: "sandbox login -u USER " + a[0]}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	go func() {
		pw.Write(append(pass, '\n'))
		pw.Close()
	}()
	defer pr.Close()
	var ans storeAnswer
	if _, err := callStore(e, s, &ans, pr, append(append([]string{"login"}, r.args()...), "--username", *user, a[0])...); err != nil {
		return 0, err
	}
	fmt.Fprintln(e.stdout, "Login Succeeded")
	return 0, nil
}

func readLine(f *os.File) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := f.Read(one)
		if n == 1 && one[0] != '\n' {
			b = append(b, one[0])
			continue
		}
		if n == 1 || err != nil {
			return strings.TrimRight(string(b), "\r"), nil
		}
	}
}

const logoutUsage = `Usage: sandbox logout [OPTIONS] REGISTRY

Remove the stored credentials for REGISTRY.

Options:
      --authfile FILE    credentials file (default ${XDG_RUNTIME_DIR}/containers/auth.json)
`

func cmdLogout(e *env, args []string) (int, error) {
	var r remoteFlags
	fs, s := storeCommand("logout")
	r.add(fs, false)
	a, err := parseFlags(e, fs, "logout", logoutUsage, args, 1, 1)
	if err != nil {
		return 0, err
	}
	if _, err := callStore(e, s, nil, nil, append(append([]string{"logout"}, r.args()...), a[0])...); err != nil {
		return 0, err
	}
	fmt.Fprintln(e.stdout, "Removed login credentials for "+a[0])
	return 0, nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

const rmUsage = `Usage: sandbox rm [OPTIONS] CONTAINER...

Remove containers that image runs left in the store (a run without --rm
keeps its container, with its writable layer), by name or id.

Options:
      --root DIR, --runroot DIR   image store
`

func cmdRm(e *env, args []string) (int, error) {
	fs, s := storeCommand("rm")
	a, err := parseFlags(e, fs, "rm", rmUsage, args, 1, -1)
	if err != nil {
		return 0, err
	}
	for _, c := range a {
		var ans storeAnswer
		if _, err := callStore(e, s, &ans, nil, "remove", c); err != nil {
			return 0, err
		}
		fmt.Fprintln(e.stdout, c)
	}
	return 0, nil
}
