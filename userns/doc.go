// Package userns owns the re-exec protocol between the CLI and the sandbox's
// init: it spawns our own binary into new user, mount, PID, UTS, IPC,
// network and cgroup namespaces, waits while the parent writes the id maps,
// lets the child assemble the root and pivot into it, and then relays the
// command's terminal, signals and exit status.
//
// Runs in: both. parent_linux.go runs in the caller's process; child_*.go
// and init_linux.go run in the re-exec'd child, which becomes PID 1 of the
// sandbox and stays there to reap zombies; the parent signals the command
// through a pidfd the child hands over.
//
// The package names what it needs from id mapping as the small IDMapper
// interface so the protocol can be driven without setuid helpers, and the
// daemon of a fuse-overlayfs root as Options.ServeRoot (package
// fuseoverlay plugs in): the child mounts a layered root itself, kernel
// overlayfs or a FUSE mount whose device it hands to the parent.
package userns
