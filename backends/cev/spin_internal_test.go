//go:build cev

package cev

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSetSpin: the polls that follow an iteration that ran callbacks are
// the loop's default, or what SetSpin asked.
func TestSetSpin(t *testing.T) {
	l, err := New()
	require.NoError(t, err)
	defer l.Close()
	ranOnce := func() {
		ran := false
		require.NoError(t, l.Post(func() { ran = true }))
		for !ran {
			require.NoError(t, l.RunOnce(true))
		}
	}
	ranOnce()
	require.Equal(t, spinPolls, l.spin, "default")
	l.SetSpin(0)
	ranOnce()
	require.Zero(t, l.spin, "SetSpin(0)")
	l.SetSpin(-1)
	ranOnce()
	require.Equal(t, spinPolls, l.spin, "SetSpin(-1) restores the default")
}
