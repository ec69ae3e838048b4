package conformance_test

import (
	"testing"

	"github.com/evhub/evhub/conformance"
)

// TestStdNetwork runs the socket half of the suite on the standard library
// itself: every case must pass there, which is what proves the cases right.
// The standard library lacks nothing, so no case may be n/a.
func TestStdNetwork(t *testing.T) {
	res := conformance.TestNetworkResults(t, func() (conformance.Network, func() error, error) {
		return conformance.StdNetwork, nil, nil
	})
	ran := 0
	for _, r := range res {
		if r.NA != "" {
			t.Errorf("%s: n/a (%s) on the standard library", r.Name, r.NA)
		}
		if !r.Skipped {
			ran++
		}
	}
	t.Logf("standard library: %d of %d cases ran, %d skipped for a platform fact", ran, len(res), len(res)-ran)
}
