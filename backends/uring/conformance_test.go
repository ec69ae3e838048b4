//go:build linux && uring

package uring_test

import (
	"testing"

	"github.com/evhub/evhub/backends/uring"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

func openLoop() (loop.Loop, error) { return uring.New() }

func openHub() (*scheduler.Hub, error) {
	l, err := uring.New()
	if err != nil {
		return nil, err
	}
	h, err := scheduler.New(l)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	return h, nil
}

// TestConformance runs the shared loop suite on the backend.
func TestConformance(t *testing.T) { conformance.TestLoop(t, openLoop) }

// TestNetwork runs the socket half of the suite on hubs over the backend.
func TestNetwork(t *testing.T) {
	conformance.TestNetwork(t, func() (conformance.Network, func() error, error) {
		h, err := openHub()
		if err != nil {
			return nil, nil, err
		}
		return h, h.Close, nil
	})
}

// TestCooperative runs the cooperative-task cases on hubs over the
// backend.
func TestCooperative(t *testing.T) { conformance.TestCooperative(t, openHub) }

// TestReactor runs the reactor area of the suite on the backend, whose
// connections then do their I/O through loop.Completer.
func TestReactor(t *testing.T) {
	l, err := openLoop()
	if err == nil {
		_, ok := l.(loop.Completer)
		_ = l.Close()
		if !ok {
			t.Fatal("the loop offers no loop.Completer")
		}
	}
	conformance.TestReactor(t, openLoop)
}

// readinessOnly hides the loop's optional capabilities (loop.Completer
// among them): a reactor on it watches readiness and reads and writes.
type readinessOnly struct{ loop.Loop }

// TestReactorReadiness runs the reactor area on the backend's readiness
// watches, without completion I/O.
func TestReactorReadiness(t *testing.T) {
	conformance.TestReactor(t, func() (loop.Loop, error) {
		l, err := openLoop()
		if err != nil {
			return nil, err
		}
		return readinessOnly{l}, nil
	})
}

func BenchmarkConformance(b *testing.B) { conformance.BenchmarkLoop(b, openLoop) }
