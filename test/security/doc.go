// Package security holds the attack tests of sandbox: each one tries, for
// real and from inside a sandbox, one way out or one way to harm the host,
// and names the class of vulnerability it guards against (escape through a
// kernel interface, privilege gain, terminal injection, symlink races,
// leaked host fds, overwriting our own binary).
//
// Runs in: tests, as an unprivileged user with subordinate id ranges and
// newuidmap/newgidmap installed (CI: user sandbox-test), like
// test/integration, whose harness (sandbox/internal/e2e) it shares: the
// binary comes from $SANDBOX_BIN or TestMain builds it;
// SANDBOX_TEST_STRICT=1 turns a missing prerequisite into a failure. The
// attacker program is testdata/try, its own module, built static by
// TestMain and copied into each test's work directory, which the sandbox
// binds read-write.
package security
