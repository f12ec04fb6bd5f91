// Package fuseoverlay serves an image sandbox's root with fuse-overlayfs
// when kernel overlayfs is refused or not wanted (spec.OverlayFuse,
// spec.OverlayAuto). The kernel overlay itself is mounted by the
// sandbox's init (package userns); this package is the other half of the
// FUSE root: the daemon.
//
// The init opens /dev/fuse inside the sandbox's user namespace (the kernel
// wants the device opened there), creates the FUSE mount detached and
// sends the device fd and its user namespace to the parent. The parent
// calls Start: fuse-overlayfs runs in the sandbox's user namespace
// (nsenter --user, so it can chown and read every layer as the ids
// inside do) but in the caller's PID and mount namespaces:
//
//   - nothing in the sandbox can see, signal or ptrace it, and it sees
//     the layers by their host paths;
//   - it is not a member of the sandbox's mount namespace, so when the
//     sandbox's last process exits the namespace and the mount go, the
//     kernel aborts the FUSE connection and the daemon exits by itself,
//     after answering what was in flight;
//   - it starts confined by Landlock (StartConfined, DaemonRules) to the
//     layers, the writable layer and the system's programs and libraries,
//     so that a flaw reached through a request cannot reach the caller's
//     other files;
//   - it gets SIGKILL when the parent dies (kill -9 of the CLI), and runs
//     in a session of its own, so a ^C at the terminal reaches the
//     command, not the file system under it.
//
// The mount exists only in the sandbox's mount namespace: no mount is
// ever made in the caller's, so none can be left behind.
//
// Runs in: parent (starting the daemon) + the fuse-overlayfs process.
package fuseoverlay
