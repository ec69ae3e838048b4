package all

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

func TestChoose(t *testing.T) {
	pref := []string{"cev", "gnet", "netpoll", "evio"}
	none := func(string) bool { return false }
	only := func(bad ...string) func(string) bool {
		return func(name string) bool {
			for _, b := range bad {
				if b == name {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name        string
		tagged      []string
		registered  []string
		unsupported func(string) bool
		want        string
	}{
		{"first registered in order", nil, []string{"evio", "gnet", "netpoll"}, none, "gnet"},
		{"a backend linked by its tag comes first", nil, []string{"cev", "evio", "gnet", "netpoll"}, none, "cev"},
		{"unsupported here is passed over", nil, []string{"evio", "gnet", "netpoll"}, only("gnet"), "netpoll"},
		{"tag forces a later backend", []string{"evio"}, []string{"evio", "gnet", "netpoll"}, none, "evio"},
		{"tag forces even where it cannot open", []string{"evio"}, []string{"evio", "gnet", "netpoll"}, only("evio"), "evio"},
		{"first tag in preference order", []string{"cev", "evio"}, []string{"cev", "evio", "gnet", "netpoll"}, none, "cev"},
		{"nothing opens: the best, whose Open says why", nil, []string{"evio", "gnet", "netpoll"}, only("evio", "gnet", "netpoll"), "gnet"},
		{"unknown registrations only", nil, []string{"mine"}, none, "mine"},
		{"nothing registered", nil, nil, none, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, choose(pref, tc.tagged, tc.registered, tc.unsupported))
		})
	}
}

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

func TestPreferenceIsACopy(t *testing.T) {
	p := Preference()
	p[0] = "changed"
	assert.NotEqual(t, "changed", Preference()[0])
}
