//go:build linux && uring

package uring

import (
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// multishot offers the loop's multishot watches as loop.EdgeWatcher, so
// that the suite's edge area and the scheduler's edge path run on them.
type multishot struct{ *Loop }

func (m multishot) WatchEdge(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return m.watchEdge(fd, ev, cb)
}

func openMultishot() (loop.Loop, error) {
	l, err := New()
	if err != nil {
		return nil, err
	}
	return multishot{l}, nil
}

// TestConformanceMultishot runs the loop suite, edge area included, with
// the multishot watches offered.
func TestConformanceMultishot(t *testing.T) { conformance.TestLoop(t, openMultishot) }

// BenchmarkPingPong is a 64-byte round trip between two hub sockets on
// one loop, with the scheduler on the loop's level-triggered watches (one
// one-shot poll per fire, what the loop offers) and on its multishot
// watches offered as loop.EdgeWatcher (one poll per socket).
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range []string{"level", "multishot"} {
		b.Run("wait="+mode, func(b *testing.B) {
			var l loop.Loop
			var err error
			if mode == "level" {
				l, err = New()
			} else {
				l, err = openMultishot()
			}
			require.NoError(b, err)
			h, err := scheduler.New(l)
			require.NoError(b, err)
			b.Cleanup(func() { _ = h.Close() })
			ln, err := h.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			b.Cleanup(func() { _ = ln.Close() })
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
			a, err := h.Dial("tcp", ln.Addr().String())
			require.NoError(b, err)
			c, ok := <-accepted
			require.True(b, ok, "accept")
			b.Cleanup(func() { _ = a.Close(); _ = c.Close() })
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := a.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(a, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
