// Package prespawn keeps one sandbox init spawned ahead of time, so that
// the next `sandbox run` skips the clone, the Go start-up of the init and
// newuidmap/newgidmap: about two thirds of its start-up.
//
// A pre-spawner is a process of the user's own, started by a run that
// found none, that spawns an init exactly as a run would (userns.Spawn),
// waits for a run to connect, hands the init's sync socket, spec pipe and
// pidfd over (userns.Adopt on the other side), spawns the next one, and
// exits after an idle period.
//
// A sandbox must not depend on which process cloned it, so both sides
// compare a fingerprint of everything the init inherits at clone time:
// the executable, every namespace, the root, credentials, groups,
// no_new_privs, seccomp, capabilities, the LSM label, the audit identity,
// the cgroup, rlimits, umask, nice value, CPU and memory affinity, plus the
// spawn configuration (id maps, helpers, set-up capabilities). The socket
// is named after the fingerprint, so a run only finds a pre-spawner that
// matches it; the pre-spawner recomputes the fingerprint of the connecting
// process from /proc and refuses a mismatch (a same-uid process confined by
// seccomp, an LSM or other namespaces cannot get an unconfined sandbox from
// it), and the run checks the pre-spawner the same way. The mount table,
// which may change after the init was cloned, travels as a hash with the
// handoff; a run that sees a different one runs directly.
//
// A run that took a sandbox sends its spec when it is over. The next init
// gets it first, as a speculative spec with nothing of that run's process
// (userns.Speculation), and builds that root while it waits; a run whose
// own spec builds the same root, with every bind source still the file or
// directory that was bound, takes the root as it is (the mounts leave the
// start-up path), and any other run has it discarded.
//
// The sockets live in a private directory: $XDG_RUNTIME_DIR/sandbox, or
// /tmp/sandbox-UID without it, used only when it is a real directory (not
// a symlink) owned by the user with no access for anybody else.
//
// Runs in: the CLI (parent) and the pre-spawner process.
package prespawn
