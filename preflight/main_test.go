package preflight

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for ours: the probes re-exec
// /proc/self/exe with ProbeCommand, as main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ProbeCommand {
		os.Exit(ProbeMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}
