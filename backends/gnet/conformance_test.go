//go:build linux

package gnet_test

import (
	"testing"

	"github.com/evhub/evhub/backends/gnet"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

func openGnet() (loop.Loop, error) { return gnet.New() }

// TestConformance runs the shared loop suite on the backend directly, so
// that `go test ./backends/gnet` covers it too.
func TestConformance(t *testing.T) {
	conformance.TestLoop(t, openGnet)
}
