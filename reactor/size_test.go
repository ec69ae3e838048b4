package reactor

import (
	"io"
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	_ "github.com/evhub/evhub/backends/gnet"
)

// TestConnSize: an idle connection's own struct stays in the 64-byte
// size class on a loop.Completer and in the 80-byte one with a watcher or
// stream (buffers, timers and the rest live elsewhere until used).
func TestConnSize(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(64))
	require.LessOrEqual(t, unsafe.Sizeof(watchedConn{}), uintptr(80))
	require.LessOrEqual(t, unsafe.Sizeof(connBufs{}), uintptr(64))
}

// frames echoes whole 4-byte frames and leaves a partial one buffered.
type frames struct{ opened chan *Conn }

func (h frames) OnOpen(c *Conn) { h.opened <- c }
func (frames) OnData(c *Conn) {
	for c.InboundBuffered() >= 4 {
		b, _ := c.Next(4)
		_, _ = c.Write(b)
	}
}
func (frames) OnClose(*Conn, error) {}

// TestIdleHoldsNoBuffers: a connection holds its connBufs (and buffers)
// only while it holds bytes — a partial frame — and gives them back when
// it goes idle.
func TestIdleHoldsNoBuffers(t *testing.T) {
	h := frames{opened: make(chan *Conn, 1)}
	s, err := New(h, Options{Backend: "gnet", Loops: 1})
	require.NoError(t, err)
	defer s.Close()
	a, err := s.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	nc, err := net.Dial("tcp", a.String())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(5*time.Second)))
	c := <-h.opened
	holds := func() (held bool, in int) {
		done := make(chan struct{})
		require.NoError(t, c.Post(func(c *Conn) {
			held, in = c.b != nil, c.InboundBuffered()
			close(done)
		}))
		<-done
		return held, in
	}

	_, err = nc.Write([]byte("abcdef"))
	require.NoError(t, err)
	got := make([]byte, 4)
	_, err = io.ReadFull(nc, got)
	require.NoError(t, err)
	require.Equal(t, "abcd", string(got))
	held, in := holds()
	require.True(t, held, "a partial frame is held")
	require.Equal(t, 2, in)

	_, err = nc.Write([]byte("gh"))
	require.NoError(t, err)
	_, err = io.ReadFull(nc, got)
	require.NoError(t, err)
	require.Equal(t, "efgh", string(got))
	held, in = holds()
	require.False(t, held, "an idle connection holds no buffers")
	require.Zero(t, in)
}
