package scheduler_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
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
				echoOnce(t, ln.Addr().String(), "hi")
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

// TestListenSpreadReusePort: every hub listens on the one port with a
// socket of its own (SO_REUSEPORT); the kernel spreads connections over
// them, each a connection of the hub whose socket took it, through the
// merged Accept and through each hub's own listener.
func TestListenSpreadReusePort(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			hubs := []*scheduler.Hub{openHub(t, name), openHub(t, name), openHub(t, name)}
			ln, err := scheduler.ListenSpreadMode(hubs, "tcp", "127.0.0.1:0", scheduler.SpreadReusePort)
			require.NoError(t, err)
			defer ln.Close()
			require.Equal(t, scheduler.SpreadReusePort, ln.Mode())
			lns := ln.Listeners()
			require.Len(t, lns, len(hubs))
			for i, l := range lns {
				require.Equal(t, ln.Addr().String(), l.Addr().String(), "listener %d", i)
				rc, err := l.(syscall.Conn).SyscallConn()
				require.NoError(t, err)
				var v int
				var gerr error
				require.NoError(t, rc.Control(func(fd uintptr) {
					v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT)
				}))
				require.NoError(t, gerr)
				require.Equal(t, 1, v, "SO_REUSEPORT on listener %d", i)
			}

			const n = 60
			landed := make(chan *scheduler.Hub, n)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					h := ln.HubOf(c)
					landed <- h
					if h == nil {
						c.Close()
						continue
					}
					_, _ = h.Go(func(context.Context) error {
						defer c.Close()
						_, err := io.Copy(c, c)
						return err
					})
				}
			}()
			for range n {
				echoOnce(t, ln.Addr().String(), "hi")
			}
			counts := map[*scheduler.Hub]int{}
			for range n {
				counts[<-landed]++
			}
			require.Zero(t, counts[nil], "connections of no hub")
			// 60 connections from distinct ports all hashed to one of
			// three sockets would be a chance of 3^-59.
			require.Greater(t, len(counts), 1, "connections on hubs: %v", counts)

			require.NoError(t, ln.Close())
			_, err = ln.Accept()
			require.ErrorIs(t, err, net.ErrClosed)
			require.Error(t, ln.Close(), "second Close")

			// The merged Accept honours its deadline.
			ln2, err := scheduler.ListenSpreadMode(hubs, "tcp", "127.0.0.1:0", scheduler.SpreadReusePort)
			require.NoError(t, err)
			require.NoError(t, ln2.SetDeadline(time.Now().Add(20*time.Millisecond)))
			_, err = ln2.Accept()
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.NoError(t, ln2.SetDeadline(time.Time{}))
			require.NoError(t, ln2.Close())

			_, err = scheduler.ListenSpreadMode(hubs, "unix", filepath.Join(t.TempDir(), "s"), scheduler.SpreadReusePort)
			require.ErrorIs(t, err, errors.ErrUnsupported, "SO_REUSEPORT on a unix socket")
			_, err = scheduler.ListenSpreadMode(hubs, "tcp", "127.0.0.1:0", scheduler.SpreadMode(7))
			require.Error(t, err, "unknown mode")
		})
	}
}

// TestListenSpreadReusePortPerHub: each hub accepts on its own listener,
// in a task of that hub, and serves what it accepts there.
func TestListenSpreadReusePortPerHub(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			hubs := []*scheduler.Hub{openHub(t, name), openHub(t, name)}
			ln, err := scheduler.ListenSpreadMode(hubs, "tcp", "127.0.0.1:0", scheduler.SpreadReusePort)
			require.NoError(t, err)
			var served atomic.Int64
			for i, l := range ln.Listeners() {
				h := hubs[i]
				_, err := h.Go(func(context.Context) error {
					for {
						c, err := l.Accept()
						if err != nil {
							return nil
						}
						if ln.HubOf(c) != h {
							c.Close()
							continue
						}
						served.Add(1)
						_, _ = h.Go(func(context.Context) error {
							defer c.Close()
							_, err := io.Copy(c, c)
							return err
						})
					}
				})
				require.NoError(t, err)
			}
			for range 20 {
				echoOnce(t, ln.Addr().String(), "ok")
			}
			require.EqualValues(t, 20, served.Load(), "connections served by the hub that accepted them")
			require.NoError(t, ln.Close())
		})
	}
}

// echoOnce dials addr, sends msg and requires it back.
func echoOnce(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write([]byte(msg))
	require.NoError(t, err)
	b := make([]byte, len(msg))
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	require.Equal(t, msg, string(b))
}
