package conformance

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// stressCases: many connections, fd reuse, and backpressure.
func netStressCases() []netCase {
	var cs []netCase
	add := func(name string, run func(t *testing.T, e *env)) {
		cs = append(cs, netCase{area: "stress", name: name, run: run})
	}
	add("ConnectClose5000TCP", func(t *testing.T, e *env) { stressConnectClose(t, e, "tcp", 5000) })
	add("ConnectClose2000Unix", func(t *testing.T, e *env) { stressConnectClose(t, e, "unix", 2000) })
	add("SlowReader32MiBTCP", func(t *testing.T, e *env) { stressSlowReader(t, e, "tcp") })
	add("SlowReader32MiBUnix", func(t *testing.T, e *env) { stressSlowReader(t, e, "unix") })
	add("ConcurrentConns100TCP", func(t *testing.T, e *env) { stressConcurrent(t, e, "tcp", 100) })
	add("CloseRaceTCP", func(t *testing.T, e *env) { stressCloseRace(t, e, "tcp") })
	add("CloseRaceUnix", func(t *testing.T, e *env) { stressCloseRace(t, e, "unix") })
	add("AcceptEMFILETCP", func(t *testing.T, e *env) { stressAcceptEMFILE(t, e, "tcp") })
	add("AcceptEMFILEUnix", func(t *testing.T, e *env) { stressAcceptEMFILE(t, e, "unix") })
	add("FDReuseTCP", func(t *testing.T, e *env) { stressFDReuse(t, e, "tcp") })
	add("FDReuseUnix", func(t *testing.T, e *env) { stressFDReuse(t, e, "unix") })
	return cs
}

// settleCounts polls until the process's fd and goroutine counts are back
// to at most fds and gs, and fails t if they are not within 5 s.
func settleCounts(t *testing.T, what string, fds, gs int) {
	t.Helper()
	var nf, ng int
	for deadline := time.Now().Add(5 * time.Second); ; {
		nf, ng = len(openFDs()), runtime.NumGoroutine()
		if (nf <= fds && ng <= gs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, nf, fds, "%s: open file descriptors not back to the baseline", what)
	assert.LessOrEqual(t, ng, gs, "%s: goroutines not back to the baseline", what)
}

func stressConnectClose(t *testing.T, e *env, nw string, cycles int) {
	ln := e.net().listen(nw)
	// Through the reference if the network cannot dial: then its accepted
	// conns are the ones tested.
	dialer := e.net().dialer()
	fds0, gs0 := len(openFDs()), runtime.NumGoroutine()

	// The server reads the client's byte, then closes; the client reads
	// EOF, then closes: every cycle is a real exchange on a fresh conn.
	srv := goErr(func() error {
		buf := make([]byte, 1)
		for i := 0; i < cycles; i++ {
			c, err := ln.Accept()
			if err != nil {
				return fmt.Errorf("accept %d: %w", i, err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadFull(c, buf)
			cerr := c.Close()
			if err != nil || cerr != nil {
				return fmt.Errorf("conn %d: read %v, close %v", i, err, cerr)
			}
		}
		return nil
	})
	start := time.Now()
	buf := make([]byte, 1)
	for i := 0; i < cycles; i++ {
		c, err := dialer.Dial(nw, ln.Addr().String())
		require.NoError(t, err, "dial %d", i)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write([]byte{byte(i)})
		require.NoError(t, err, "write %d", i)
		n, err := c.Read(buf)
		require.Equal(t, 0, n, "read %d", i)
		require.Equal(t, io.EOF, err, "read %d: the server closed", i)
		require.NoError(t, c.Close(), "close %d", i)
		if time.Since(start) > 40*time.Second {
			t.Fatalf("only %d of %d connect/close cycles in 40s", i, cycles)
		}
	}
	require.NoError(t, waitFor(t, srv, 10*time.Second, "server"))
	t.Logf("%d connect/close cycles over %s in %v", cycles, nw, time.Since(start).Round(time.Millisecond))
	settleCounts(t, fmt.Sprintf("after %d connect/close cycles", cycles), fds0, gs0)
}

func stressSlowReader(t *testing.T, e *env, nw string) {
	const total = 32 << 20
	c, peer, _ := e.conns(nw)
	require.NoError(t, c.SetDeadline(time.Now().Add(40*time.Second)))
	require.NoError(t, peer.SetDeadline(time.Now().Add(40*time.Second)))
	pt := newPattern(5)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var (
		peakMu sync.Mutex
		peak   = base
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				peakMu.Lock()
				peak = max(peak, m.HeapInuse)
				peakMu.Unlock()
			}
		}
	}()

	// The writer is far faster than the reader: a network that buffers
	// instead of applying backpressure grows the heap by the payload.
	wr := goErr(func() error {
		if err := pt.write(c, total, 256<<10); err != nil {
			return err
		}
		return c.Close()
	})
	slow := &slowReader{r: peer, pause: 500 * time.Microsecond}
	rerr := pt.read(slow, total, 32<<10, true)
	close(stop)
	<-sampled
	require.NoError(t, rerr, "slow reader")
	require.NoError(t, waitFor(t, wr, 10*time.Second, "writer"))
	peakMu.Lock()
	growth := int64(peak) - int64(base)
	peakMu.Unlock()
	t.Logf("32 MiB to a slow reader over %s: HeapInuse grew at most %d KiB", nw, growth>>10)
	assert.Less(t, growth, int64(8<<20), "heap grew by %d bytes while 32 MiB went to a slow reader: the network buffers instead of applying backpressure", growth)
}

// slowReader sleeps after each Read.
type slowReader struct {
	r     io.Reader
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	time.Sleep(s.pause)
	return n, err
}

func stressConcurrent(t *testing.T, e *env, nw string, conns int) {
	ln := e.net().listen(nw)
	dialer := e.net().dialer()
	const each = 256 << 10
	var wg sync.WaitGroup
	// Echo server: one goroutine per accepted conn.
	srv := goErr(func() error {
		for i := 0; i < conns; i++ {
			c, err := ln.Accept()
			if err != nil {
				return fmt.Errorf("accept %d: %w", i, err)
			}
			e.track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = echo(c)
				_ = c.Close()
			}()
		}
		return nil
	})
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		go func() {
			errs <- func() error {
				c, err := dialer.Dial(nw, ln.Addr().String())
				if err != nil {
					return fmt.Errorf("dial %d: %w", i, err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				pt := newPattern(uint64(100 + i))
				wr := goErr(func() error {
					if err := pt.write(c, each, 16<<10); err != nil {
						return err
					}
					return c.(closeWriter).CloseWrite()
				})
				if err := pt.read(c, each, 16<<10, true); err != nil {
					return fmt.Errorf("conn %d: %w", i, err)
				}
				return <-wr
			}()
		}()
	}
	for i := 0; i < conns; i++ {
		assert.NoError(t, waitFor(t, errs, 40*time.Second, "echo clients"))
	}
	require.NoError(t, waitFor(t, srv, 10*time.Second, "acceptor"))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitFor(t, done, 10*time.Second, "echo handlers")
}

// fdOf returns c's descriptor number, or -1.
func fdOf(c net.Conn) int {
	sc, ok := c.(syscallConner)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func stressFDReuse(t *testing.T, e *env, nw string) {
	s := e.net()
	ln := s.listen(nw)
	const rounds = 100
	reused := 0
	big := make([]byte, 64<<20) // never fits in the kernel's buffers: a Write of it blocks
	for i := 0; i < rounds; i++ {
		// An old conn with a call blocked in it (a read, or a write to a
		// peer that does not read) is closed; the kernel hands its fd
		// number to the next socket. Nothing of the old conn may reach
		// the new one: no stale wake-up, no data, no error.
		c1, s1 := s.connectUT(ln)
		fd1 := fdOf(c1)
		var pending <-chan readResult
		if i%2 == 0 {
			pending = goRead(c1, make([]byte, 8))
		} else {
			pending = goWrite(c1, big)
		}
		settle0(i)
		closeC1 := func() {
			require.NoError(t, c1.Close())
			r := waitFor(t, pending, prompt, "call blocked in a conn being closed")
			require.ErrorIs(t, r.err, net.ErrClosed, "round %d: call released by Close", i)
		}
		var c2, s2 net.Conn
		if e.dials {
			closeC1()
			c2, s2 = s.connectUT(ln)
		} else {
			// The conn under test is the accepted one: the reference
			// dials before c1 closes, so that the fd c1 frees goes to
			// the network's Accept rather than to the reference's
			// socket.
			c2, s2 = e.underTest(s.connectVia(s.dialer(), ln, closeC1))
		}
		if fd1 >= 0 && fdOf(c2) == fd1 {
			reused++
		}
		for _, c := range []net.Conn{c2, s1, s2} {
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		}
		// The old peer writes into the dead conn; the new pair talks.
		_, _ = s1.Write([]byte("stale!!!"))
		msg := fmt.Sprintf("fresh %03d", i)
		_, err := s2.Write([]byte(msg))
		require.NoError(t, err)
		buf := make([]byte, len(msg))
		_, err = io.ReadFull(c2, buf)
		require.NoError(t, err, "round %d: reading on the new conn", i)
		require.Equal(t, msg, string(buf), "round %d: the new conn got foreign data", i)
		_, err = c2.Write([]byte(msg))
		require.NoError(t, err)
		_, err = io.ReadFull(s2, buf)
		require.NoError(t, err)
		require.Equal(t, msg, string(buf), "round %d: the new conn's peer got foreign data", i)
		// The old peer sees its conn closed (EOF, or a reset after the
		// stale write), never the new conn's data.
		n, err := io.ReadAll(s1)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("round %d: the old peer's read: %v", i, err)
		}
		if i%2 == 1 {
			// It may drain what the old conn had written before Close.
			require.NotContains(t, string(n), "fresh", "round %d: the old peer got the new conn's data", i)
		} else {
			require.Empty(t, n, "round %d: the old peer got data", i)
		}
		for _, c := range []net.Conn{c2, s1, s2} {
			require.NoError(t, c.Close())
		}
	}
	t.Logf("fd number reused by the next conn in %d of %d rounds", reused, rounds)
}

// settle0 lets the blocked call of round i park; short, but varied so
// that Close races the park on some rounds too.
func settle0(i int) {
	if i%4 != 3 {
		time.Sleep(2 * time.Millisecond)
	}
}

// stressCloseRace: Close races with Reads, Writes and deadline changes in
// other goroutines, on either end, round after round. Every call must end
// promptly with an error net could return there, and the race detector
// watches the network's bookkeeping.
func stressCloseRace(t *testing.T, e *env, nw string) {
	s := e.net()
	ln := s.listen(nw)
	ok := func(err error) bool {
		return err == nil || err == io.EOF || errors.Is(err, net.ErrClosed) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
	}
	for i := range 200 {
		c, peer := s.connectUT(ln)
		var calls []<-chan error
		calls = append(calls,
			goErr(func() error { // reader
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return err
					}
				}
			}),
			goErr(func() error { // writer
				buf := make([]byte, 16<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return err
					}
				}
			}),
			goErr(func() error { // deadline churn
				for {
					if err := c.SetDeadline(time.Now().Add(time.Hour)); err != nil {
						return err
					}
					time.Sleep(50 * time.Microsecond)
				}
			}),
			goErr(func() error { // the peer echoes
				_, err := echo(peer)
				return err
			}),
		)
		time.Sleep(time.Duration(i%5) * 300 * time.Microsecond)
		first, second := c, peer
		if i%3 == 2 {
			first, second = peer, c // the peer closes first
		}
		require.NoError(t, first.Close(), "round %d: Close", i)
		require.NoError(t, second.Close(), "round %d: Close", i)
		for j, ch := range calls {
			err := waitFor(t, ch, prompt, fmt.Sprintf("round %d: call %d racing Close", i, j))
			assert.True(t, ok(err), "round %d: call %d racing Close ended with %v", i, j, err)
		}
	}
}

// echo copies c back to itself through plain Read and Write: io.Copy
// between two *net.TCPConn would splice through a pipe from net's pipe
// pool, which outlives the case and reads as a descriptor leak.
func echo(c net.Conn) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
}

// stressAcceptEMFILE: a pending connection arrives while the process has no
// descriptor left. net's Accept returns the EMFILE error at once and leaves
// the back-off to its caller (net/http sleeps and retries); a network may
// instead keep Accept blocked and retry with a back-off of its own. Either
// way it must not spin, and the conn must be accepted once descriptors are
// free again.
func stressAcceptEMFILE(t *testing.T, e *env, nw string) {
	ln := e.net().listen(nw)

	type acc struct {
		c   net.Conn
		err error
	}
	goAccept := func() <-chan acc {
		ch := make(chan acc, 1)
		go func() {
			c, err := ln.Accept()
			if !isNil(c) {
				e.track(c)
			}
			ch <- acc{c, err}
		}()
		return ch
	}

	// One descriptor is left for the client (dialed through the reference),
	// none for the network to accept its conn with, whenever it tries.
	restore, err := exhaustFDs(1)
	require.NoError(t, err, "lower RLIMIT_NOFILE")
	c, err := net.Dial(nw, ln.Addr().String())
	if err != nil {
		_ = restore()
		t.Fatalf("dial with the last free descriptor: %v", err)
	}
	e.track(c)
	time.Sleep(20 * time.Millisecond) // a network that accepts eagerly meets EMFILE now
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	start := time.Now()
	ch := goAccept()
	var first *acc
	select {
	case r := <-ch:
		first = &r
	case <-time.After(300 * time.Millisecond):
	}
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	wall := time.Since(start)
	require.NoError(t, restore(), "restore RLIMIT_NOFILE")

	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	t.Logf("Accept with no descriptor free: %s; CPU %v over %v", map[bool]string{true: "returned", false: "stayed blocked"}[first != nil], cpu, wall.Round(time.Millisecond))
	assert.Less(t, cpu, wall/2+20*time.Millisecond, "CPU used while Accept faced EMFILE: spinning?")
	if first != nil {
		// net's way: the error, then a retry by the caller.
		require.Error(t, first.err, "Accept succeeded with no descriptor free")
		assert.ErrorIs(t, first.err, syscall.EMFILE)
		var oe *net.OpError
		assert.ErrorAs(t, first.err, &oe)
		ch = goAccept()
	}
	r := waitFor(t, ch, prompt, "Accept once descriptors are free again")
	require.NoError(t, r.err, "Accept once descriptors are free again")
}

// exhaustFDs lowers the soft RLIMIT_NOFILE so that only spare more
// descriptors can be opened (the lowest free numbers) and the one after
// fails with EMFILE; restore puts the limit back.
func exhaustFDs(spare int) (restore func() error, err error) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		return nil, err
	}
	lowest, err := unix.Dup(2)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	_ = unix.Close(lowest)
	lim := old
	setRlim(&lim.Cur, lowest+spare)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil, err
	}
	return func() error { return unix.Setrlimit(unix.RLIMIT_NOFILE, &old) }, nil
}

// setRlim sets a limit of unix.Rlimit, whose fields are uint64 on Linux
// and macOS but int64 on FreeBSD and DragonFly.
func setRlim[T ~int64 | ~uint64](p *T, n int) { *p = T(n) }
