//go:build linux

package evio_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// TestFuzzDeclaredDifference: evio lacks loop.CapUnixUnreadReset, and the
// differential fuzzer (rule 9) takes the difference it declares for what
// it is: the peer of an accepted unix conn closed with bytes read ahead
// but unread reads io.EOF where net's reads ECONNRESET; counted, not a
// divergence.
func TestFuzzDeclaredDifference(t *testing.T) {
	checkClean(t)
	h := openHub(t)
	defer func() { require.NoError(t, h.Close()) }()
	require.False(t, loop.Supports(h, loop.CapUnixUnreadReset))
	dir, err := os.MkdirTemp("", "evfz")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	input := []byte{
		1,    // unix
		1, 6, // B writes 1000 bytes
		4, 4, // A reads 64: evio reads the rest ahead
		12,   // A closes with 936 bytes unread
		5, 4, // B reads: net's ECONNRESET, evio's io.EOF
	}
	before := conformance.DeclaredDifferences()
	ops, err := conformance.Differential(h, dir, input)
	require.NoError(t, err)
	require.Equal(t, 4, ops)
	require.Equal(t, before+1, conformance.DeclaredDifferences())
}
