package reactor

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConnList: a random run of adds and removes keeps every position
// right, finds exactly the members, and holds at most one spare block.
func TestConnList(t *testing.T) {
	var l connList
	r := rand.New(rand.NewPCG(1, 2))
	var in []*Conn
	var out []*Conn
	for step := range 20000 {
		if len(in) == 0 || (step < 10000 && r.IntN(3) > 0) || (step >= 10000 && r.IntN(3) == 0) {
			c := &Conn{idx: -1}
			l.add(c)
			in = append(in, c)
		} else {
			k := r.IntN(len(in))
			c := in[k]
			in[k] = in[len(in)-1]
			in = in[:len(in)-1]
			require.True(t, l.remove(c))
			require.Equal(t, int32(-1), c.idx)
			require.False(t, l.remove(c), "removed twice")
			out = append(out, c)
		}
		require.Equal(t, len(in), l.len())
		require.LessOrEqual(t, len(l.blocks)*connChunk, l.len()+2*connChunk)
	}
	for _, c := range in {
		require.Same(t, c, l.at(int(c.idx)))
	}
	for _, c := range out {
		require.False(t, l.remove(c))
	}
	for l.len() > 0 {
		require.True(t, l.remove(l.at(l.len()-1)))
	}
	require.LessOrEqual(t, len(l.blocks), 1)
}
