package all

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

func TestEveryPureGoBackendIsLinked(t *testing.T) {
	names := loop.Names()
	for _, name := range []string{"evio", "gnet", "netpoll"} {
		assert.Contains(t, names, name)
	}
	for _, name := range names {
		assert.Contains(t, Preference(), name, "a linked backend missing from the preference list")
	}
}

func TestDefault(t *testing.T) {
	got := Default()
	require.Contains(t, loop.Names(), got)
	if tags := Tagged(); len(tags) > 0 {
		require.Equal(t, tags[0], got, "a build tag naming a backend forces it")
		return
	}
	if runtime.GOOS == "linux" {
		require.Equal(t, "gnet", got, "the fastest backend that builds here")
	}
	l, err := loop.Open(got)
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func TestPreferenceReachesTheRegistry(t *testing.T) {
	order, tags := loop.Preference()
	assert.Equal(t, Preference(), order)
	assert.ElementsMatch(t, Tagged(), tags)
}

func TestPreferenceIsACopy(t *testing.T) {
	p := Preference()
	p[0] = "changed"
	assert.NotEqual(t, "changed", Preference()[0])
}
