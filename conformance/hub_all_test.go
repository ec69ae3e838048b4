package conformance_test

import (
	"testing"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// TestHubs runs the socket half of the suite on a hub of every registered
// backend.
func TestHubs(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			conformance.TestNetwork(t, func() (conformance.Network, func() error, error) {
				h, err := evhub.Open(name)
				if err != nil {
					return nil, nil, err
				}
				return h, h.Close, nil
			})
		})
	}
}

// TestCooperativeTasks runs the cooperative-task cases on every backend.
func TestCooperativeTasks(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			conformance.TestCooperative(t, func() (*scheduler.Hub, error) { return evhub.Open(name) })
		})
	}
}
