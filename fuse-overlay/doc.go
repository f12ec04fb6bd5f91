// Package fuseoverlay will assemble a copy-on-write root for image
// sandboxes: kernel overlayfs inside the user namespace where the kernel
// allows it, fuse-overlayfs otherwise. The directory name follows the
// project's layout; the package name has no dash.
//
// Runs in: child, before pivot_root (+ the fuse-overlayfs helper process).
// Host-tool sandboxes do not use it: their root is built by userns from
// read-only binds of the host's system directories.
package fuseoverlay
