package scheduler_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"

	// The scheduler knows no backend; its tests and benchmarks run on
	// every backend that backends/all links (the tagged ones, such as cev,
	// with their build tag), so that the wait primitive's cost can be
	// compared side by side.
	_ "github.com/evhub/evhub/backends/all"
)

// backends are the loops the scheduler's own tests run on: every linked
// backend that watches fds and dials (they build both ends of a
// connection on the hub), and that opens on this machine. A listen-only
// backend (evio) is covered by the conformance suite, which reports what
// it lacks as n/a.
func backends() []string {
	var out []string
	for _, name := range loop.Names() {
		l, err := loop.Open(name)
		if err != nil {
			continue
		}
		if loop.Supports(l, loop.CapWatch) && loop.Supports(l, loop.CapDial) {
			out = append(out, name)
		}
		_ = l.Close()
	}
	return out
}

func TestBackendsFound(t *testing.T) {
	require.NotEmpty(t, backends(), "no backend that watches fds and dials among %v", loop.Names())
	for _, name := range loop.Names() {
		l, err := loop.Open(name)
		if err != nil {
			require.ErrorIs(t, err, errors.ErrUnsupported, "only a backend this platform rules out may be left out")
			continue
		}
		require.NoError(t, l.Close())
	}
}
