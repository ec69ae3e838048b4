package scheduler_test

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// TestConnTypes: a hub connection has the same concrete type whichever
// loop carries it — *scheduler.TCPConn for TCP, *scheduler.UnixConn for
// unix — whether the loop polls fds (its conns accepted and dialed) or
// owns its sockets (evio: its accepted conns), so a type assertion in
// user code does not depend on the backend.
func TestConnTypes(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			if l, err := loop.Open(name); err != nil {
				require.ErrorIs(t, err, errors.ErrUnsupported, "only a backend this platform rules out may be left out")
				t.Skipf("platform: %v", err)
			} else {
				require.NoError(t, l.Close())
			}
			h := openHub(t, name)
			for _, nw := range []string{"tcp", "unix"} {
				addr := "127.0.0.1:0"
				if nw == "unix" {
					addr = filepath.Join(t.TempDir(), "s")
				}
				ln, err := h.Listen(nw, addr)
				require.NoError(t, err)
				ch := make(chan net.Conn, 1)
				go func() {
					c, err := ln.Accept()
					assert.NoError(t, err)
					ch <- c
				}()
				dialed, err := h.Dial(nw, ln.Addr().String())
				if !loop.Supports(h, loop.CapDial) {
					require.ErrorIs(t, err, errors.ErrUnsupported, "%s cannot dial", name)
					dialed, err = net.Dial(nw, ln.Addr().String())
				}
				require.NoError(t, err)
				var accepted net.Conn
				select {
				case accepted = <-ch:
				case <-time.After(10 * time.Second):
					t.Fatal("Accept")
				}
				require.NotNil(t, accepted)
				conns := map[string]net.Conn{"accepted": accepted}
				if loop.Supports(h, loop.CapDial) {
					conns["dialed"] = dialed
				}
				for role, c := range conns {
					switch nw {
					case "tcp":
						tc, ok := c.(*scheduler.TCPConn)
						if assert.True(t, ok, "%s %s conn is %T, not *scheduler.TCPConn", role, nw, c) {
							assert.NoError(t, tc.SetNoDelay(false), "SetNoDelay")
							assert.NoError(t, tc.SetKeepAlive(true), "SetKeepAlive")
							assert.NoError(t, tc.SetLinger(-1), "SetLinger")
							assert.NoError(t, tc.CloseWrite(), "CloseWrite")
						}
					case "unix":
						uc, ok := c.(*scheduler.UnixConn)
						if assert.True(t, ok, "%s %s conn is %T, not *scheduler.UnixConn", role, nw, c) {
							assert.NoError(t, uc.SetReadBuffer(32<<10), "SetReadBuffer")
							assert.NoError(t, uc.CloseWrite(), "CloseWrite")
						}
					}
				}
				require.NoError(t, accepted.Close())
				require.NoError(t, dialed.Close())
				require.NoError(t, ln.Close())
			}
		})
	}
}
