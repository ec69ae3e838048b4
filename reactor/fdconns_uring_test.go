//go:build linux && uring

package reactor

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/evhub/evhub/backends/uring"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// TestFDConnsEmptyAfterHandOverAndClose: on a loop.Completer, a
// connection leaves the loop's table by fd when it closes and when it is
// handed over, so the table keeps no connection that left.
func TestFDConnsEmptyAfterHandOverAndClose(t *testing.T) {
	hl, err := loop.Open("uring")
	require.NoError(t, err)
	hub, err := scheduler.New(hl)
	require.NoError(t, err)
	defer hub.Close()
	handed := make(chan net.Conn, 1)
	s, err := New(Funcs{Data: func(c *Conn) {
		b, _ := c.Next(-1)
		if string(b) == "over" {
			assert.NoError(t, c.HandOver(hub, func(nc net.Conn, err error) {
				assert.NoError(t, err)
				handed <- nc
			}))
			return
		}
		_, _ = c.Write(b)
	}}, Options{Backend: "uring", Loops: 1})
	require.NoError(t, err)
	defer s.Close()
	require.NotNil(t, s.els[0].comp, "the uring loop's Completer is in use")
	a, err := s.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	table := func() (n int) {
		done := make(chan struct{})
		require.NoError(t, s.els[0].l.Post(func() {
			s.els[0].byFD.each(func(*Conn) { n++ })
			close(done)
		}))
		<-done
		return n
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", a.String())
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		return c
	}

	c1, c2 := dial(), dial()
	require.Equal(t, 2, table())
	require.NoError(t, c1.Close())
	require.Eventually(t, func() bool { return table() == 1 }, 5*time.Second, time.Millisecond, "a closed connection leaves")

	_, err = c2.Write([]byte("over"))
	require.NoError(t, err)
	nc := <-handed
	require.Equal(t, 0, table(), "a handed-over connection leaves")
	require.NoError(t, nc.Close())
	require.NoError(t, c2.Close())
}
