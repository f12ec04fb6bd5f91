// Package e2e holds the end-to-end test harness that test/integration and
// test/security share: it finds or builds the binary under test, builds a
// suite's helper programs, runs the binary (or any program) bounded by a
// timeout, plain or in a real terminal, and checks what a user would see of
// a run. What only one suite needs stays in that suite.
//
// A missing prerequisite (an unprivileged user, a host tool, a helper that
// did not build) goes through RequireX: a skip that names the reason, or,
// under SANDBOX_TEST_STRICT=1, a failure. The binary comes from $SANDBOX_BIN,
// or Main builds it from cmd/sandbox.
//
// Runs in: tests; only the end-to-end suites' _test.go files import it.
package e2e
