//go:build linux

package evio

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestStreamSize: an idle stream is one allocation of the 96-byte size
// class, its handler's context included (what only troubled streams need
// is in streamRare, allocated on first use): the largest share of what
// evhub adds to evio's own cost per connection.
func TestStreamSize(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(stream{}), uintptr(96))
}
