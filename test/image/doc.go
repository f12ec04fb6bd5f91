// Package image holds the end-to-end tests of the image commands: they
// drive the built sandbox binary and its store helper, sandbox-store,
// against a real registry on loopback (internal/registry), images built
// in Go (internal/testimage) and skopeo as the independent peer, and look
// at the store on disk from the host.
//
// Runs in: tests, as an unprivileged user with subordinate ids and
// newuidmap/newgidmap (CI: sandbox-test, 200000:65536). The binary comes
// from $SANDBOX_BIN with sandbox-store beside it, or TestMain builds both.
// With SANDBOX_TEST_STRICT=1 a missing prerequisite fails a test.
package image
