//go:build linux

package evio_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	rawevio "github.com/tidwall/evio"

	"github.com/evhub/evhub/backends/netpoll"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// pingPong runs b.N 64-byte round trips from a standard-library client.
func pingPong(b *testing.B, addr string) {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.SetBytes(64)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// serveRawEvio is the echo server of the bench's "evio" row: evio alone,
// one loop, the reply returned from Data.
func serveRawEvio(b *testing.B) (addr string, stop func()) {
	b.Helper()
	var shutdown atomic.Bool
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	var ev rawevio.Events
	ev.Serving = func(s rawevio.Server) rawevio.Action {
		addrc <- s.Addrs[0].String()
		return rawevio.None
	}
	ev.Data = func(_ rawevio.Conn, in []byte) ([]byte, rawevio.Action) { return in, rawevio.None }
	ev.Tick = func() (time.Duration, rawevio.Action) {
		if shutdown.Load() {
			return 0, rawevio.Shutdown
		}
		return 10 * time.Millisecond, rawevio.None
	}
	go func() { done <- rawevio.Serve(ev, "tcp://127.0.0.1:0") }()
	select {
	case addr = <-addrc:
	case err := <-done:
		b.Fatal(err)
	}
	return addr, func() { shutdown.Store(true); <-done }
}

// serveHub echoes on accepted hub conns, a goroutine per conn (the bench's
// evhub rows).
func serveHub(b *testing.B, l loop.Loop) (addr string, stop func()) {
	b.Helper()
	h, err := scheduler.New(l)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
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
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close(); _ = h.Close() }
}

// BenchmarkEchoPingPong compares one connection's 64-byte round trip
// through raw evio, a hub on evio and a hub on netpoll, in one process (the
// client's cost is in every row alike; bench/ measures server CPU alone).
func BenchmarkEchoPingPong(b *testing.B) {
	b.Run("server=raw-evio", func(b *testing.B) {
		addr, stop := serveRawEvio(b)
		defer stop()
		pingPong(b, addr)
	})
	b.Run("server=hub-evio", func(b *testing.B) {
		addr, stop := serveHub(b, mustEvio(b))
		defer stop()
		pingPong(b, addr)
	})
	b.Run("server=hub-netpoll", func(b *testing.B) {
		l, err := netpoll.New()
		if err != nil {
			b.Fatal(err)
		}
		addr, stop := serveHub(b, l)
		defer stop()
		pingPong(b, addr)
	})
}

func mustEvio(b *testing.B) loop.Loop {
	l, err := openEvio()
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkRawEvioWake measures the defect the backend works around: a
// naive adapter that wakes evio's loop with Conn.Wake from another
// goroutine and waits for the resulting Data event. stalls/op is the
// share of wake-ups that waited for epoll's 100 ms timeout (over 50 ms).
func BenchmarkRawEvioWake(b *testing.B) {
	var (
		shutdown atomic.Bool
		conn     atomic.Value
		woken    = make(chan struct{}, 1)
		addrc    = make(chan string, 1)
		done     = make(chan error, 1)
	)
	var ev rawevio.Events
	ev.Serving = func(s rawevio.Server) rawevio.Action { addrc <- s.Addrs[0].String(); return rawevio.None }
	ev.Opened = func(c rawevio.Conn) ([]byte, rawevio.Options, rawevio.Action) {
		conn.Store(c)
		return nil, rawevio.Options{}, rawevio.None
	}
	ev.Data = func(c rawevio.Conn, in []byte) ([]byte, rawevio.Action) {
		if in == nil {
			woken <- struct{}{}
		}
		if shutdown.Load() {
			return nil, rawevio.Shutdown
		}
		return nil, rawevio.None
	}
	go func() { done <- rawevio.Serve(ev, "tcp://127.0.0.1:0") }()
	addr := <-addrc
	client, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	for conn.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	c := conn.Load().(rawevio.Conn)
	var stalls int
	var worst time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		c.Wake()
		<-woken
		d := time.Since(start)
		worst = max(worst, d)
		if d > 50*time.Millisecond {
			stalls++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(stalls)/float64(b.N), "stalls/op")
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
	shutdown.Store(true)
	c.Wake()
	<-done
}
