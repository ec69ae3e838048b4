//go:build uring && cgo

package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLiburingEcho runs the C liburing server briefly: echo figures and a small
// idle-memory figure.
func TestLiburingEcho(t *testing.T) {
	sc, lc := testCPUs(t)
	srv, ok := Lookup("liburing")
	require.True(t, ok)
	cfg := &Config{
		Workloads: []Workload{smallWorkload("pingpong-64", 8), smallWorkload("msg16k-64", 4), smallWorkload("idle-10000", 100)},
		Servers:   []*Server{srv},
		Reps:      1,
		Warmup:    100 * time.Millisecond,
		Duration:  300 * time.Millisecond,
		ServerCPU: sc, LoadCPU: lc,
		Spawn: testSpawner,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.Empty(t, rep.Failures())
	for _, s := range rep.Samples {
		if s.Workload == "idle-10000" {
			assert.Equal(t, 100, s.Conns)
			continue
		}
		assert.Positive(t, s.RoundTripsPerSec, s.Workload)
		assert.Positive(t, s.ServerCPUPerRT, s.Workload)
	}
}
