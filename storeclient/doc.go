// Package storeclient runs the image store helper, sandbox-store, for the
// CLI: it finds the helper next to the running sandbox binary, starts it
// in a new user and mount namespace with the podman-style map (inside 0
// is the caller, 1..N the caller's subordinate ids; idmap.PlanRoot), or,
// without subordinate ids or newuidmap, with the caller alone mapped, and
// returns the helper's JSON answer and typed errors.
//
// It is a package of its own, outside image/, because of what it must not
// link: everything under image/ imports containers/storage and
// containers/image, whose init costs every process 15-20 ms, and whose
// pkg/unshare runs a C constructor; this package imports neither (the
// guard is cmd/sandbox/deps_test.go), so the CLI reaches the store
// without paying for it on `sandbox run`.
//
// The protocol with the helper is in cmd/sandbox-store's doc.go: argv
// flags, a sync pipe on fd 3 that says when the maps are written, one
// JSON document on stdout.
//
// Runs in: the CLI (parent), in the host user namespace.
package storeclient
