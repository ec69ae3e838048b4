package reactor

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestConnSize: an idle connection's own struct stays in the 80-byte
// size class (buffers, timers and the rest live elsewhere until used).
func TestConnSize(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(80))
	require.LessOrEqual(t, unsafe.Sizeof(connBufs{}), uintptr(64))
}
