package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub"
)

func TestTour(t *testing.T) {
	for _, backend := range evhub.Backends() {
		t.Run(backend, func(t *testing.T) {
			hub, err := evhub.Open(backend)
			require.NoError(t, err)
			defer func() { require.NoError(t, hub.Close()) }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rep, err := Tour(ctx, hub, 3, 20)
			require.NoError(t, err)
			require.Equal(t, backend, rep.Backend)
			require.Len(t, rep.Lookups, 3)
			require.Contains(t, rep.HTTPBody, "hello from 127.0.0.1:")
			require.Equal(t, []string{"child line 1", "child line 2", "child line 3"}, rep.ChildLines)
			require.Equal(t, 3*20*len("ping"), rep.EchoBytes)
			require.Positive(t, rep.Ticks, "the ticker ran while the others worked")
		})
	}
}
