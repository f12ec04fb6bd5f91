// Command sandbox-store is the image store helper of sandbox: the only
// binary that links containers/storage and containers/image, which cost
// 15-20 ms of start-up per process and must stay off `sandbox run`'s path.
// `sandbox pull`, `images` and the other image commands start it through
// package storeclient; it is not meant to be run by hand.
//
// Its contract (storeclient is the other side):
//
//	sandbox-store [--sync-fd=N] --root DIR --runroot DIR [--single-id] [-q] [--debug]
//	              COMMAND [ARGS...]
//
// With --sync-fd it first reads fd N: one byte says the parent has
// written its id maps (a user namespace made at clone time, inside 0 the
// caller, 1..N the subordinate ids) and it may go on; EOF says the parent
// gave up, and it exits. Before that byte it makes no system call that
// reads or sets its ids: they are still unmapped (65534), and a process
// that sets the uid it read then, as dash does at start-up, ends up as
// subordinate uid 65534 once the map is written, which newgidmap then
// refuses ("Target is owned by a different user"). It answers on stdout with one JSON document:
// the command's result, or {"error": {...}} with exit status 1 (2 for a
// mistake in its own arguments). Progress goes to stderr, and only when
// stderr is a terminal and -q is not given.
//
// Commands: pull REF [--tls-verify=BOOL] [--authfile F] [--registry R]...;
// push IMAGE DEST; images; rmi [-f] IMAGE...; tag IMAGE NEW; inspect IMAGE;
// load -i FILE; save -o FILE [--format docker-archive|oci-archive] IMAGE;
// import ROOTFS.tar NAME; login [--username U] REGISTRY (password on
// stdin); logout REGISTRY; prepare IMAGE [--name N]; remove CONTAINER.
//
// Runs in: its own user and mount namespace, as root of that namespace.
package main
