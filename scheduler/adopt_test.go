package scheduler_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// TestAdoptBuffered: an adopted socket reads the bytes its previous owner
// had read first, then the socket, in order.
func TestAdoptBuffered(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			if !loop.Supports(mustLoop(t, name), loop.CapWatch) {
				t.Skipf("n/a: %s cannot watch fds", name)
			}
			h := openHub(t, name)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			defer client.Close()
			srv, err := ln.Accept()
			require.NoError(t, err)
			_, err = client.Write([]byte("abcdef"))
			require.NoError(t, err)
			pre := make([]byte, 2)
			_, err = io.ReadFull(srv, pre)
			require.NoError(t, err)
			fd := dupFD(t, srv)
			srv.Close()
			c, err := h.Adopt(fd, pre)
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
			got := make([]byte, 6)
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			require.Equal(t, "abcdef", string(got))
			_, err = c.Write([]byte("ok"))
			require.NoError(t, err)
			_, err = io.ReadFull(client, got[:2])
			require.NoError(t, err)
			require.Equal(t, "ok", string(got[:2]))
			require.Equal(t, client.LocalAddr().String(), c.RemoteAddr().String())

			_, err = h.Adopt(-1, nil)
			require.Error(t, err, "a bad fd")
		})
	}
}

// TestListenSpread: one listener, connections spread over every hub in
// turn, served by tasks of the hub each landed on.
func TestListenSpread(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			if !loop.Supports(mustLoop(t, name), loop.CapWatch) {
				t.Skipf("n/a: %s cannot watch fds", name)
			}
			hubs := []*scheduler.Hub{openHub(t, name), openHub(t, name), openHub(t, name)}
			ln, err := scheduler.ListenSpread(hubs, "tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			landed := make(chan *scheduler.Hub, 30)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					h := ln.HubOf(c)
					landed <- h
					_, _ = h.Go(func(context.Context) error {
						defer c.Close()
						_, err := io.Copy(c, c)
						return err
					})
				}
			}()
			for range 30 {
				c, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(t, err)
				require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
				_, err = c.Write([]byte("hi"))
				require.NoError(t, err)
				b := make([]byte, 2)
				_, err = io.ReadFull(c, b)
				require.NoError(t, err)
				c.Close()
			}
			counts := map[*scheduler.Hub]int{}
			for range 30 {
				counts[<-landed]++
			}
			for i, h := range hubs {
				require.Equal(t, 10, counts[h], "connections on hub %d", i)
			}
			_, err = scheduler.ListenSpread(nil, "tcp", "127.0.0.1:0")
			require.Error(t, err, "no hubs")
		})
	}
}

func mustLoop(t *testing.T, name string) loop.Loop {
	l, err := loop.Open(name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func dupFD(t *testing.T, c net.Conn) int {
	rc, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	fd := -1
	require.NoError(t, rc.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}))
	require.NoError(t, err)
	return fd
}
