package scheduler_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openHub(t testing.TB, name string) *scheduler.Hub {
	t.Helper()
	l, err := loop.Open(name)
	require.NoError(t, err)
	h, err := scheduler.New(l)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h
}

// pair returns a connected pair of hub TCP connections.
func pair(t testing.TB, h *scheduler.Hub) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c1, err := h.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	r := <-ch
	require.NoError(t, r.err)
	t.Cleanup(func() { c1.Close(); r.c.Close() })
	return c1, r.c
}

func TestEcho(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			a, b := pair(t, h)
			go func() { _, _ = io.Copy(b, b) }()
			buf := make([]byte, 5)
			for i := 0; i < 100; i++ {
				_, err := a.Write([]byte("hello"))
				require.NoError(t, err)
				_, err = io.ReadFull(a, buf)
				require.NoError(t, err)
				require.Equal(t, "hello", string(buf))
			}
		})
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			a, _ := pair(t, h)
			errc := make(chan error, 1)
			go func() {
				_, err := a.Read(make([]byte, 1))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			require.NoError(t, a.Close())
			select {
			case err := <-errc:
				require.ErrorIs(t, err, net.ErrClosed)
				var oe *net.OpError
				require.ErrorAs(t, err, &oe)
				assert.Equal(t, "read", oe.Op)
			case <-time.After(5 * time.Second):
				t.Fatal("Read still blocked 5s after Close")
			}
		})
	}
}

func TestReadDeadline(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			a, _ := pair(t, h)
			start := time.Now()
			require.NoError(t, a.SetReadDeadline(start.Add(30*time.Millisecond)))
			_, err := a.Read(make([]byte, 1))
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
			var ne net.Error
			require.True(t, errors.As(err, &ne))
			assert.True(t, ne.Timeout())
		})
	}
}

func TestHubCloseClosesSockets(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			l, err := loop.Open(name)
			require.NoError(t, err)
			h, err := scheduler.New(l)
			require.NoError(t, err)
			ln, err := h.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := ln.Accept()
				assert.ErrorIs(t, err, net.ErrClosed)
			}()
			time.Sleep(10 * time.Millisecond)
			require.NoError(t, h.Close())
			wg.Wait()
			_, err = h.Listen("tcp", "127.0.0.1:0")
			require.ErrorIs(t, err, net.ErrClosed)
			require.NoError(t, h.Close(), "Close is idempotent")
		})
	}
}

// BenchmarkReadyReadWrite measures Read and Write on a socket that is
// already ready: one syscall each, and zero allocations.
func BenchmarkReadyReadWrite(b *testing.B) {
	for _, name := range backends() {
		b.Run("backend="+name, func(b *testing.B) {
			h := openHub(b, name)
			a, c := pair(b, h)
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// levelOnly hides a loop's optional EdgeWatcher, forcing the scheduler's
// level-triggered path (arm by Post on each wait, disarm on each event) so
// that the two paths can be measured on the same backend.
type levelOnly struct{ loop.Loop }

// BenchmarkPingPong is a round trip between two hub sockets: each side
// waits for the other, so it measures the wait primitive (park, readiness,
// wake) rather than the syscalls alone. Edge-capable backends run twice:
// wait=edge (one registration per fd) and wait=level (a Post per wait).
func BenchmarkPingPong(b *testing.B) {
	for _, name := range backends() {
		l, err := loop.Open(name)
		require.NoError(b, err)
		_, edge := l.(loop.EdgeWatcher)
		require.NoError(b, l.Close())
		modes := []string{"level"}
		if edge {
			modes = []string{"edge", "level"}
		}
		for _, mode := range modes {
			b.Run("backend="+name+"/wait="+mode, func(b *testing.B) {
				l, err := loop.Open(name)
				require.NoError(b, err)
				if mode == "level" {
					l = levelOnly{l}
				}
				h, err := scheduler.New(l)
				require.NoError(b, err)
				b.Cleanup(func() { h.Close() })
				benchPingPong(b, h)
			})
		}
	}
}

// BenchmarkEchoServer is BenchmarkPingPong with the echoing side reading
// 4 KiB at a time, as a server does (and the bench's servers do): its
// reads come back short, which the level path turns into one read(2) per
// round trip (package doc, "The wait primitive").
func BenchmarkEchoServer(b *testing.B) {
	for _, name := range backends() {
		b.Run("backend="+name+"/wait=level", func(b *testing.B) {
			l, err := loop.Open(name)
			require.NoError(b, err)
			h, err := scheduler.New(levelOnly{l})
			require.NoError(b, err)
			b.Cleanup(func() { h.Close() })
			a, c := pair(b, h)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			roundTrips(b, a)
		})
	}
}

func benchPingPong(b *testing.B, h *scheduler.Hub) {
	a, c := pair(b, h)
	go func() { _ = echo64(c) }()
	roundTrips(b, a)
}

// echo64 echoes 64-byte messages until c fails.
func echo64(c net.Conn) error {
	buf := make([]byte, 64)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
}

// roundTrips times b.N 64-byte round trips through an echoing peer.
func roundTrips(b *testing.B, a net.Conn) {
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(a, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdPingPong is the same round trip on the standard library, the
// reference the hub is measured against.
func BenchmarkStdPingPong(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = echo64(c)
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(b, err)
	defer a.Close()
	roundTrips(b, a)
}

// BenchmarkTaskPingPong is BenchmarkPingPong with the echoing side written
// as a cooperative task: the wake-up path of tasks (readiness → resume).
func BenchmarkTaskPingPong(b *testing.B) {
	for _, name := range backends() {
		b.Run("backend="+name, func(b *testing.B) {
			h := openHub(b, name)
			a, c := pair(b, h)
			_, err := h.Go(func(ctx context.Context) error { return echo64(c) })
			require.NoError(b, err)
			roundTrips(b, a)
		})
	}
}
