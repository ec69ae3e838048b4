package evhub_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/loop"
)

func TestOpenUnknownBackendListsKnown(t *testing.T) {
	_, err := evhub.Open("nope")
	var ub *loop.UnknownBackendError
	require.ErrorAs(t, err, &ub)
	require.Equal(t, evhub.Backends(), ub.Known)
	require.Contains(t, err.Error(), "netpoll")
}

func TestBackendsSortedAndDefaultCompiledIn(t *testing.T) {
	bs := evhub.Backends()
	require.IsIncreasing(t, bs)
	require.Contains(t, bs, evhub.DefaultBackend())
}

func TestEnvBackendOverridesDefault(t *testing.T) {
	t.Setenv(evhub.EnvBackend, "netpoll")
	require.Equal(t, "netpoll", evhub.DefaultBackend())
	t.Setenv(evhub.EnvBackend, "nope")
	require.Equal(t, "nope", evhub.DefaultBackend())
}

func TestMonitorEnv(t *testing.T) {
	t.Setenv(evhub.EnvMonitor, "soon")
	_, err := evhub.Open("netpoll")
	require.ErrorContains(t, err, evhub.EnvMonitor)

	t.Setenv(evhub.EnvMonitor, "50ms")
	h, err := evhub.Open("netpoll")
	require.NoError(t, err)
	require.Error(t, h.StartMonitor(time.Second, nil), "EVHUB_MONITOR already started the monitor")
	require.NoError(t, h.Close())
}

func TestHubCloseIdempotentAndRefusesWork(t *testing.T) {
	h, err := evhub.Open("netpoll")
	require.NoError(t, err)
	require.NoError(t, h.Close())
	require.NoError(t, h.Close())
	_, err = h.Listen("tcp", "127.0.0.1:0")
	require.True(t, errors.Is(err, evhub.ErrHubClosed))
	_, err = h.Dial("tcp", "127.0.0.1:1")
	require.ErrorIs(t, err, evhub.ErrHubClosed)
	_, err = h.ListenPacket("udp", "127.0.0.1:0")
	require.ErrorIs(t, err, evhub.ErrHubClosed)
}
