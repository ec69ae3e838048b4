//go:build linux && uring

package uring_test

import (
	"testing"

	"github.com/evhub/evhub/backends/uring"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// levelOnly hides the loop's loop.EdgeWatcher, so that the scheduler
// takes its level-triggered path (one-shot poll requests) instead of one
// multishot request per socket.
type levelOnly struct{ loop.Loop }

// TestNetworkLevel runs the socket half of the suite on hubs that use the
// backend's level-triggered watchers only.
func TestNetworkLevel(t *testing.T) {
	conformance.TestNetwork(t, func() (conformance.Network, func() error, error) {
		l, err := uring.New()
		if err != nil {
			return nil, nil, err
		}
		h, err := scheduler.New(levelOnly{l})
		if err != nil {
			_ = l.Close()
			return nil, nil, err
		}
		return h, h.Close, nil
	})
}
