package reactor

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	_ "github.com/evhub/evhub/backends/netpoll"
)

type echoHandler struct{}

func (echoHandler) OnOpen(*Conn) {}
func (echoHandler) OnData(c *Conn) {
	in, _ := c.Next(-1)
	_, _ = c.Write(in)
}
func (echoHandler) OnClose(*Conn, error) {}

// TestAcceptBacksOffWhenOutOfFDs: an accept that fails with EMFILE pauses
// the listener (5 ms, then 10, then 20: internal/backoff, as the hub's
// listeners) instead of retrying on a listener that stays ready; the
// connection is accepted once a descriptor is free.
func TestAcceptBacksOffWhenOutOfFDs(t *testing.T) {
	// No descriptor is free for 30 ms after the first accept.
	var calls, fails atomic.Int32
	var first atomic.Int64
	acceptFn = func(s int) (int, error) {
		calls.Add(1)
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		if now-first.Load() < int64(30*time.Millisecond) {
			fails.Add(1)
			return -1, unix.EMFILE
		}
		return acceptFD(s)
	}
	defer func() { acceptFn = acceptFD }()

	srv, err := New(echoHandler{}, Options{Backend: "netpoll", Loops: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Close()) }()
	addr, err := srv.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	c, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	got := make([]byte, 4)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err, "the connection is served once accepting works again")
	assert.Equal(t, "ping", string(got))
	// Paused 5, 10 and 20 ms: three or four failures (a late timer can
	// make it fewer), the accept that worked and the EAGAIN after it. A
	// listener retried while out of descriptors calls thousands of times.
	assert.GreaterOrEqual(t, fails.Load(), int32(1))
	assert.LessOrEqual(t, calls.Load(), int32(8), "accept calls (%d failed)", fails.Load())
}
