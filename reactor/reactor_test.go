package reactor_test

import (
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	_ "github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/reactor"
)

// The behaviour is tested by the conformance suite's reactor area
// (conformance.TestReactor) on every backend; these are the package's own
// checks of cost.

type echo struct{}

func (echo) OnOpen(*reactor.Conn) {}
func (echo) OnData(c *reactor.Conn) {
	b, _ := c.Next(-1)
	_, _ = c.Write(b)
}
func (echo) OnClose(*reactor.Conn, error) {}

func startEcho(t testing.TB, backend string) (*reactor.Server, string) {
	return startEchoOpt(t, reactor.Options{Backend: backend})
}

func startEchoOpt(t testing.TB, opt reactor.Options) (*reactor.Server, string) {
	opt.Loops = 1
	s, err := reactor.New(echo{}, opt)
	require.NoError(t, err)
	a, err := s.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return s, a.String()
}

func pingPong(t testing.TB, c net.Conn, buf []byte, n int) {
	for range n {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNoAllocationPerEvent: a steady echo connection allocates nothing
// per round trip on the server (the client's net.Conn allocates nothing
// either), on the backends whose dispatch allocates nothing.
func TestNoAllocationPerEvent(t *testing.T) {
	defer goleak.VerifyNone(t)
	backends := []string{"gnet", "netpoll"}
	if l, err := loop.Open("uring"); err == nil {
		// Where it runs (-tags uring): completion I/O allocates nothing
		// per message either.
		_ = l.Close()
		backends = append(backends, "uring")
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			s, addr := startEcho(t, backend)
			defer s.Close()
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			buf := make([]byte, 64)
			pingPong(t, c, buf, 200) // warm the pools
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			const n = 2000
			pingPong(t, c, buf, n)
			runtime.ReadMemStats(&m1)
			per := float64(m1.Mallocs-m0.Mallocs) / n
			t.Logf("%s: %.3f allocations per round trip (server and client)", backend, per)
			require.Less(t, per, 0.05)
		})
	}
}

// BenchmarkPingPong is one 64-byte round trip through a reactor echo
// server, client in the same process.
func BenchmarkPingPong(b *testing.B) {
	for _, backend := range loop.Names() {
		b.Run(backend, func(b *testing.B) {
			s, addr := startEcho(b, backend)
			defer s.Close()
			c, err := net.Dial("tcp", addr)
			require.NoError(b, err)
			defer c.Close()
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			pingPong(b, c, buf, b.N)
		})
	}
}

// BenchmarkIdleHeap reports the server's heap per idle connection (1,000
// connections that each echoed once; the client's sockets are measured
// out by opening them first). RSS per connection at 10,000 connections,
// in a process of its own, is the bench's idle-10000 row:
// go run ./cmd/evhub bench -workload idle-10000.
//
// On a loop with completion I/O (loop.Completer) the "-readiness" case is
// the same server with Options.NoCompletion.
func BenchmarkIdleHeap(b *testing.B) {
	type mode struct {
		name, backend string
		noComp        bool
	}
	var modes []mode
	for _, backend := range loop.Names() {
		modes = append(modes, mode{backend, backend, false})
		if l, err := loop.Open(backend); err == nil {
			if _, ok := l.(loop.Completer); ok {
				modes = append(modes, mode{backend + "-readiness", backend, true})
			}
			_ = l.Close()
		}
	}
	for _, m := range modes {
		backend := m.backend
		b.Run(m.name, func(b *testing.B) {
			const n = 1000
			var perConn float64
			for range b.N {
				s, addr := startEchoOpt(b, reactor.Options{Backend: backend, NoCompletion: m.noComp})
				cs := make([]net.Conn, 0, n)
				buf := make([]byte, 64)
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				for range n {
					c, err := net.Dial("tcp", addr)
					require.NoError(b, err)
					pingPong(b, c, buf, 1)
					cs = append(cs, c)
				}
				require.Eventually(b, func() bool { return s.Conns() == n }, 5*time.Second, time.Millisecond)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				// Subtract the client side: a net.Conn costs what it costs
				// whoever serves it; measured below on a plain listener.
				perConn = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
				for _, c := range cs {
					c.Close()
				}
				s.Close()
			}
			server := perConn - clientHeap(b, n)
			b.ReportMetric(server, "server-B/conn")
			if w, ok := watchHeap(b, backend, n, !m.noComp); ok {
				b.ReportMetric(w, "backend-B/conn")
				b.ReportMetric(server-w, "reactor-B/conn")
			}
		})
	}
}

// watchHeap is the heap the backend's watcher of one fd costs: n
// sockets watched on a bare loop with one shared callback (so no closure
// per fd, which the reactor's part pays).
//
// With recv, on a loop.Completer, it is a Recv instead of a Watch.
func watchHeap(b *testing.B, backend string, n int, recv bool) (float64, bool) {
	l, err := loop.Open(backend)
	require.NoError(b, err)
	defer l.Close()
	if !loop.Supports(l, loop.CapWatch) {
		return 0, false
	}
	fds := make([]int, 0, 2*n)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for range n {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0) // the flags are Linux's; set them apart
		require.NoError(b, err)
		fds = append(fds, p[0], p[1])
		for _, fd := range p {
			unix.CloseOnExec(fd)
			require.NoError(b, unix.SetNonblock(fd, true))
		}
	}
	cb := func(loop.Events) {}
	var rcv nopReceiver
	comp, _ := l.(loop.Completer)
	ws := make([]loop.Watcher, 0, n)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range n {
		if recv && comp != nil {
			require.NoError(b, comp.Recv(fds[2*i], &rcv))
			continue
		}
		w, err := l.Watch(fds[2*i], loop.Readable, cb)
		require.NoError(b, err)
		ws = append(ws, w)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	for _, w := range ws {
		_ = w.Stop()
	}
	if recv && comp != nil {
		for i := range n {
			_ = comp.StopRecv(fds[2*i])
		}
	}
	return float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n), true
}

// nopReceiver is a loop.Receiver shared by every receive, as the
// reactor's loop is for its connections.
type nopReceiver struct{}

func (*nopReceiver) Received(int, []byte, error) {}

// clientHeap is the heap n client connections (and the accepted sockets
// of a listener nobody serves) cost.
func clientHeap(b *testing.B, n int) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	var acc []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			acc = append(acc, c)
		}
	}()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cs := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(b, err)
		cs = append(cs, c)
	}
	<-done
	runtime.GC()
	runtime.ReadMemStats(&m1)
	for _, c := range cs {
		c.Close()
	}
	for _, c := range acc {
		c.Close()
	}
	// Half of it is the accepted side, which the reactor replaces.
	return float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n) / 2
}

// burst runs n connections that each echo 256 KiB at once, and returns
// the server process's live heap before (idle), at the end of the burst,
// and one second after it (after two collections: connections must hold
// no buffer, so what the burst took is garbage or in the pools, which the
// collector empties in two cycles).
func burst(t testing.TB, backend string, n int) (idle, peak, after uint64) {
	s, addr := startEcho(t, backend)
	defer s.Close()
	cs := make([]net.Conn, 0, n)
	buf := make([]byte, 64)
	for range n {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		pingPong(t, c, buf, 1)
		cs = append(cs, c)
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// The burst's clients are 2n goroutines of this process, and the
	// runtime keeps an exited goroutine's descriptor for reuse, in the
	// heap: have 2n exit before the idle figure too, so that the figures
	// compare the server's heap.
	var parked sync.WaitGroup
	release := make(chan struct{})
	for range 2 * n {
		parked.Add(1)
		go func() { parked.Done(); <-release }()
	}
	parked.Wait()
	close(release)
	idle = heap()
	var wg sync.WaitGroup
	const size = 256 << 10
	payload := make([]byte, size)
	var peakMu sync.Mutex
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			go func() { _, _ = c.Write(payload) }()
			got := make([]byte, size)
			_, err := io.ReadFull(c, got)
			assert.NoError(t, err)
			var m runtime.MemStats
			peakMu.Lock()
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			peakMu.Unlock()
		}()
	}
	wg.Wait()
	time.Sleep(time.Second)
	runtime.GC() // the pools keep a victim generation for one cycle
	after = heap()
	return idle, peak, after
}

// TestHeapBackAfterBurst: after a burst, the heap returns to its idle
// level, within the loop's cache of small buffers (at most 16 of each
// size up to 4 KiB: 120 KiB per loop).
func TestHeapBackAfterBurst(t *testing.T) {
	idle, peak, after := burst(t, "gnet", 200)
	t.Logf("heap: idle %d KiB, during the burst up to %d KiB, 1 s after %d KiB", idle>>10, peak>>10, after>>10)
	require.Less(t, int64(after)-int64(idle), int64(256<<10), "back at the idle level")
}

// BenchmarkHeapAfterBurst reports the same for 1,000 connections.
func BenchmarkHeapAfterBurst(b *testing.B) {
	for range b.N {
		idle, peak, after := burst(b, "gnet", 1000)
		b.ReportMetric(float64(idle)/(1<<10), "idle-KiB")
		b.ReportMetric(float64(peak)/(1<<10), "burst-KiB")
		b.ReportMetric(float64(after)/(1<<10), "after-1s-KiB")
	}
}
