// Command sandbox runs tools and OCI images in rootless sandboxes.
package main

import (
	"os"
	"time"

	"sandbox/preflight"
	"sandbox/userns"
)

// started is when main began, the origin of the --debug stage times.
var started time.Time

func main() {
	// Internal stages are dispatched before anything else runs: the child
	// stage must not parse the user's flags or touch the terminal.
	if len(os.Args) > 1 && os.Args[1] == userns.InitCommand {
		os.Exit(userns.InitMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == prespawnCommand {
		os.Exit(prespawnMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == preflight.ProbeCommand {
		os.Exit(preflight.ProbeMain(os.Args[2:]))
	}
	started = time.Now()
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
