//go:build linux

package evio_test

import (
	"testing"

	"github.com/evhub/evhub/backends/evio"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

func openEvio() (loop.Loop, error) { return evio.New() }

func openHub(t testing.TB) *scheduler.Hub {
	t.Helper()
	l, err := evio.New()
	if err != nil {
		t.Fatalf("evio.New: %v", err)
	}
	h, err := scheduler.New(l)
	if err != nil {
		t.Fatalf("scheduler.New: %v", err)
	}
	return h
}

// TestConformance runs the shared loop suite on the backend directly, so
// that `go test ./backends/evio` covers it too.
func TestConformance(t *testing.T) {
	conformance.TestLoop(t, openEvio)
}
