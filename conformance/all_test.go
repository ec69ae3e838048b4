package conformance_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// backends/all links every backend; cev and the other tagged ones with
// their build tag.

func open(name string) func() (loop.Loop, error) {
	return func() (loop.Loop, error) { return loop.Open(name) }
}

// TestBackends runs the loop conformance suite against every registered
// backend.
func TestBackends(t *testing.T) {
	names := loop.Names()
	require.NotEmpty(t, names, "no backend registered")
	for _, name := range names {
		t.Run(name, func(t *testing.T) { conformance.TestLoop(t, open(name)) })
	}
}

// BenchmarkBackends runs the loop benchmarks for every registered backend.
func BenchmarkBackends(b *testing.B) {
	for _, name := range loop.Names() {
		b.Run("backend="+name, func(b *testing.B) { conformance.BenchmarkLoop(b, open(name)) })
	}
}

// TestReactorBackends runs the reactor area against every registered
// backend.
func TestReactorBackends(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) { conformance.TestReactor(t, open(name)) })
	}
}
