package conformance_test

import (
	"testing"

	"github.com/evhub/evhub/conformance"
)

// TestStdNetwork runs the socket half of the suite on the standard library
// itself: every case must pass there, which is what proves the cases right.
func TestStdNetwork(t *testing.T) {
	conformance.TestNetwork(t, func() (conformance.Network, func() error, error) {
		return conformance.StdNetwork, nil, nil
	})
}
