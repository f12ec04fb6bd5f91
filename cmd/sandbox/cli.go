package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// env is what every subcommand gets: the standard streams and a logger.
// Only cmd/sandbox prints; library packages get the logger.
type env struct {
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
	debug  bool
	log    *slog.Logger
	// forward receives the signals a run passes on to its command, once
	// a run registered them (forwardSignals).
	forward chan os.Signal
}

// command is one subcommand. run returns the process exit code, or an error
// that explain turns into words and exit code 125.
type command struct {
	summary string
	hidden  bool
	run     func(e *env, args []string) (int, error)
}

var commands map[string]command

func init() {
	// Assigned here rather than in the declaration to break the
	// initialization cycle through cmdHelp.
	commands = map[string]command{
		"run":     {summary: "run a command in a new sandbox", run: cmdRun},
		"doctor":  {summary: "check this host and print how to fix what is missing", run: cmdDoctor},
		"info":    {summary: "show which mode each capability would use now", run: cmdInfo},
		"version": {summary: "print the version", run: cmdVersion},
		"help":    {summary: "show help for a command", run: cmdHelp},
		"pull":    {summary: "fetch an image from a registry into the image store", run: cmdPull},
		"push":    {summary: "copy a local image to a registry", run: cmdPush},
		"images":  {summary: "list the images in the store", run: cmdImages},
		"rmi":     {summary: "remove images from the store", run: cmdRmi},
		"tag":     {summary: "give a local image another name", run: cmdTag},
		"image":   {summary: "image inspect: show a local image's config and layers", run: cmdImage},
		"load":    {summary: "read images from a docker-archive or oci-archive", run: cmdLoad},
		"save":    {summary: "write a local image to a docker-archive or oci-archive", run: cmdSave},
		"import":  {summary: "make an image from a root file system tarball", run: cmdImport},
		"login":   {summary: "store credentials for a registry", run: cmdLogin},
		"logout":  {summary: "remove the stored credentials for a registry", run: cmdLogout},
		"rm":      {summary: "remove containers image runs left in the store", run: cmdRm},
	}
}

// Main runs the CLI with args (without the program name) and returns the
// exit code.
func Main(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	e.log = slog.New(slog.DiscardHandler)
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	name := args[0]
	switch name {
	case "-h", "--help":
		usage(stdout)
		return 0
	case "-v", "--version":
		name = "version"
	}
	if err := refusePrivileged(); err != nil {
		return explain(e, err)
	}
	c, ok := commands[name]
	if !ok {
		return explain(e, &usageError{msg: fmt.Sprintf("unknown command %q", name), fix: "sandbox help"})
	}
	code, err := c.run(e, args[1:])
	if err != nil {
		return explain(e, err)
	}
	return code
}

// enableDebug turns on --debug logging to stderr.
func (e *env) enableDebug() {
	e.debug = true
	e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sandbox COMMAND [OPTIONS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'sandbox help COMMAND' for a command's options.")
}

func cmdHelp(e *env, args []string) (int, error) {
	if len(args) == 0 {
		usage(e.stdout)
		return 0, nil
	}
	c, ok := commands[args[0]]
	if !ok || args[0] == "help" {
		return 0, &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), fix: "sandbox help"}
	}
	return c.run(e, []string{"--help"})
}

// usageError is a mistake on the command line.
type usageError struct {
	msg string
	fix string
}

func (u *usageError) Error() string { return u.msg }

func isHelp(err error) bool { return errors.Is(err, errHelp) }

var errHelp = errors.New("help requested")

// privilegedBinaryError: our own executable is setuid, setgid or carries
// file capabilities.
type privilegedBinaryError struct {
	Path string
	What string
}

func (e *privilegedBinaryError) Error() string { return e.Path + " is " + e.What }

// refusePrivileged stops before anything else when our executable would
// run with more privilege than its caller: sandbox is designed for an
// unprivileged caller and trusts its inputs as the caller's own.
func refusePrivileged() error {
	if os.Geteuid() != os.Getuid() || os.Getegid() != os.Getgid() {
		exe, _ := os.Executable()
		return &privilegedBinaryError{Path: exe, What: "running with a different effective id (setuid or setgid)"}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return nil
	}
	switch {
	case fi.Mode()&os.ModeSetuid != 0:
		return &privilegedBinaryError{Path: exe, What: "setuid"}
	case fi.Mode()&os.ModeSetgid != 0:
		return &privilegedBinaryError{Path: exe, What: "setgid"}
	}
	if n, err := unix.Getxattr(exe, "security.capability", nil); err == nil && n > 0 {
		return &privilegedBinaryError{Path: exe, What: "carrying file capabilities"}
	}
	return nil
}
