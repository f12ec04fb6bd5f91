// Package image is the image store: pulling, pushing, loading, saving,
// importing, listing, tagging and removing OCI images, and handing the run
// path the layer directories of an image (Prepare). It is the only package
// that imports containers/storage and containers/image.
//
// The store is containers/storage with the overlay driver, laid out as
// rootless podman lays out its own: the process runs as root of a user
// namespace whose inside id 0 is the caller and whose inside ids 1..N are
// the caller's subordinate ids (idmap.PlanRoot), so layer files keep the
// owners their archives name, and a podman store with the same ranges is
// read and written alike. Opaque directories are user.overlay.opaque
// xattrs and whiteouts 0:0 character devices, which a kernel overlay
// mount with the userxattr option reads inside a user namespace.
//
// What comes from outside is checked before the store sees it: every
// layer blob is spooled to a temporary file, its digest verified and its
// tar stream read entry by entry (CheckLayer, CheckStack). Entries that
// would write outside the layer or change what the overlay mount shows
// reject the whole image, and nothing is committed; entries a rootless
// store cannot or should not reproduce are neutralised and reported as
// Notices. After a commit, the directories the applier had to make for
// entries whose parents the layer does not list get the owner and mode of
// the same directory below (else the overlay would show them as root's,
// 0755), and the setuid and setgid bits found are cleared.
//
// Runs in: the store helper binary (cmd/sandbox-store), inside a user and
// mount namespace that cmd/sandbox sets up through package storeclient.
// Never linked into cmd/sandbox (cmd/sandbox/deps_test.go): its
// dependencies cost 15-20 ms of start-up per process.
package image
