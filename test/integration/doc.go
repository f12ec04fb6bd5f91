// Package integration holds the end-to-end tests of sandbox: they drive the
// built binary the way a user does and check what a user would check.
//
// Runs in: tests, as an unprivileged user that has subordinate id ranges
// and newuidmap/newgidmap installed (CI: user sandbox-test, 200000:65536).
// The binary comes from $SANDBOX_BIN, or TestMain builds it. With
// SANDBOX_TEST_STRICT=1 a missing prerequisite fails a test instead of
// skipping it.
package integration
