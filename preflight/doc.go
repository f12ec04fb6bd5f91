// Package preflight probes the host for what a rootless sandbox needs:
// unprivileged user namespaces, mounts and kernel overlayfs inside one,
// FUSE and fuse-overlayfs, the user-mode network helpers, the id-mapping
// helpers and subordinate ranges, cgroup v2 and its delegation through the
// systemd user manager, and the user's runtime directory.
//
// The package works in two halves. Gather collects Facts: readers take an
// fs.FS rooted at the host's "/" so they are tested with fixtures, and the
// few real probes (a clone into a user namespace, a mount inside one,
// opening /dev/fuse, running the helpers' --version) are separate
// functions. Evaluate turns Facts into Checks, each with a verdict and the
// commands that fix it; it is pure. `sandbox doctor` prints the Checks,
// `sandbox info` reads the Facts, and the run path uses ReadUsernsFacts to
// explain a refused clone.
//
// Mounting needs a process inside a user and mount namespace, which a Go
// process cannot enter once it runs threads, so the mount probe re-execs
// our own binary as "/proc/self/exe __probe overlay DIR" (ProbeCommand,
// ProbeMain). main dispatches it before anything else runs.
//
// Runs in: parent (ProbeMain: a short-lived child in its own user and
// mount namespace).
package preflight
