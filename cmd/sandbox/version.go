package main

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

const versionUsage = `Usage: sandbox version

Print the version of sandbox, the Go release it was built with, and the
commit it was built from when the build recorded one.
`

func cmdVersion(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stdout, versionUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0, errHelp
		}
		return 0, &usageError{msg: err.Error(), fix: "sandbox help version"}
	}
	if fs.NArg() > 0 {
		return 0, &usageError{msg: fmt.Sprintf("version takes no arguments, got %q", fs.Arg(0)), fix: "sandbox version"}
	}
	bi, _ := debug.ReadBuildInfo()
	for _, line := range versionLines(version, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH, bi) {
		fmt.Fprintln(e.stdout, line)
	}
	return 0, nil
}

// versionLines renders the version; bi may be nil.
func versionLines(v, goVersion, platform string, bi *debug.BuildInfo) []string {
	lines := []string{"sandbox " + v, "go: " + goVersion + " " + platform}
	if bi == nil {
		return lines
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if modified == "true" {
			rev += " (modified)"
		}
		lines = append(lines, "commit: "+rev)
	}
	return lines
}
