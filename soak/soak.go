// Package soak runs a mixed, verified load on one hub for as long as asked
// and checks that nothing drifts: every byte that comes back is the byte
// that was sent, and when the load stops the process's goroutines and
// file descriptors return to where they were before it started.
//
// The load, all on one hub at once:
//
//   - connection churn: clients dial, send a tagged payload of random
//     size, read the echo and verify it, and close (the client first or,
//     for one in three, the server first after the echo);
//   - slow readers: the server sends 1 MiB that the client reads in 4 KiB
//     steps with pauses, so the server's writes park on a full buffer;
//   - deadlines expiring mid-transfer: the client sets a read deadline of
//     a few milliseconds on an echo the server delays, gets
//     os.ErrDeadlineExceeded, clears it and reads the rest;
//   - cooperative tasks: the echo handlers of one listener run as hub
//     tasks (Hub.Go) rather than goroutines, with a ticker task sleeping
//     on the hub beside them;
//   - datagrams: a udp echo on the hub, verified the same way (loopback
//     may drop a datagram under load: counted, not an error).
//
// Run is what `evhub soak` calls; it prints a line every interval.
package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// Config is what Run does.
type Config struct {
	// Duration of the load.
	Duration time.Duration
	// Interval between report lines (default 10 s).
	Interval time.Duration
	// Clients is the number of concurrent churning clients (default 16).
	Clients int
	// Out receives the report lines (default os.Stdout).
	Out io.Writer
	// Seed for the clients' choices.
	Seed uint64
}

// Stats are the counts of a run.
type Stats struct {
	Conns, Bytes, SlowReads, Deadlines, Datagrams, DatagramsLost, Ticks int64
}

type counters struct {
	conns, bytes, slow, deadlines, dgrams, lost, ticks atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{c.conns.Load(), c.bytes.Load(), c.slow.Load(), c.deadlines.Load(), c.dgrams.Load(), c.lost.Load(), c.ticks.Load()}
}

// Sample is the process's resource use at one moment.
type Sample struct {
	RSS, Heap  uint64
	Goroutines int
	FDs        int
}

// Measure samples the process now.
func Measure() Sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Sample{RSS: rss(), Heap: ms.HeapInuse, Goroutines: runtime.NumGoroutine(), FDs: countFDs()}
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func countFDs() int {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		if ents, err := os.ReadDir(dir); err == nil {
			return len(ents) - 1 // the directory being read
		}
	}
	return -1
}

// Run soaks hub h for cfg.Duration and returns the counts. It fails on the
// first wrong byte or unexpected error, and if, once the load has stopped
// and its sockets are closed, goroutines or descriptors stay above where
// they were before (polled for 10 s).
func Run(h *scheduler.Hub, cfg Config) (Stats, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 16
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	runtime.GC()
	base := Measure()
	s := &soaker{h: h, cfg: cfg, dials: loop.Supports(h, loop.CapDial) && loop.Supports(h, loop.CapWatch)}
	s.ctx, s.cancel = context.WithTimeout(context.Background(), cfg.Duration)
	defer s.cancel()
	err := s.run(base)
	stats := s.c.snapshot()
	if err != nil {
		return stats, err
	}
	// Back to the baseline once everything is closed.
	var now Sample
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		now = Measure()
		if now.Goroutines <= base.Goroutines && now.FDs <= base.FDs {
			break
		}
		if time.Now().After(deadline) {
			return stats, fmt.Errorf("after the load: %d goroutines (%d before), %d descriptors (%d before)", now.Goroutines, base.Goroutines, now.FDs, base.FDs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(cfg.Out, "end: back to baseline: %d goroutines (%d before), %d fds (%d before); RSS %s (%s before), heap %s (%s before)\n",
		now.Goroutines, base.Goroutines, now.FDs, base.FDs, mib(now.RSS), mib(base.RSS), mib(now.Heap), mib(base.Heap))
	return stats, nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

type soaker struct {
	h      *scheduler.Hub
	cfg    Config
	dials  bool
	ctx    context.Context
	cancel context.CancelFunc
	c      counters

	errOnce sync.Once
	err     error
}

// fail records the first failure and stops the load.
func (s *soaker) fail(err error) {
	s.errOnce.Do(func() { s.err = err; s.cancel() })
}

// stopping: the run is over (its context's deadline has passed, even if
// the context's own timer has not run yet: a dial ended by that deadline
// may return first).
func (s *soaker) stopping() bool {
	if s.ctx.Err() != nil {
		return true
	}
	d, ok := s.ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func (s *soaker) run(base Sample) error {
	dir, err := os.MkdirTemp("", "evsoak")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var lns []net.Listener
	tcp, err := s.h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	lns = append(lns, tcp)
	taskLn, err := s.h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tcp.Close()
		return err
	}
	lns = append(lns, taskLn)
	if u, err := s.h.Listen("unix", filepath.Join(dir, "s")); err == nil {
		lns = append(lns, u)
	}
	var servers sync.WaitGroup
	for i, ln := range lns {
		servers.Add(1)
		go func() { defer servers.Done(); s.serve(ln, i == 1) }()
	}
	var pc net.PacketConn
	if loop.Supports(s.h, loop.CapPacket) && loop.Supports(s.h, loop.CapWatch) {
		if pc, err = s.h.ListenPacket("udp", "127.0.0.1:0"); err == nil {
			servers.Add(1)
			go func() { defer servers.Done(); s.udpEcho(pc) }()
		}
	}
	ticker, err := s.h.Go(func(ctx context.Context) error {
		for {
			if err := s.h.Sleep(5 * time.Millisecond); err != nil {
				return nil
			}
			if ctx.Err() != nil || s.stopping() {
				return nil
			}
			s.c.ticks.Add(1)
		}
	})
	if err != nil {
		return err
	}

	var clients sync.WaitGroup
	for i := range s.cfg.Clients {
		clients.Add(1)
		go func() {
			defer clients.Done()
			r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(i)))
			for !s.stopping() {
				ln := lns[r.IntN(len(lns))]
				switch k := r.IntN(10); {
				case k < 6:
					s.churn(ln, r)
				case k < 7:
					s.slowReader(ln)
				case k < 8:
					s.deadline(ln, r)
				default:
					if pc != nil {
						s.datagrams(pc, r)
					} else {
						s.churn(ln, r)
					}
				}
			}
		}()
	}

	start := time.Now()
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	fmt.Fprintf(s.cfg.Out, "%-8s %9s %12s %10s %10s %10s %10s %5s\n", "elapsed", "conns", "bytes ok", "datagrams", "RSS", "heap", "goroutines", "fds")
	report := func() {
		st, m := s.c.snapshot(), Measure()
		fmt.Fprintf(s.cfg.Out, "%-8s %9d %12d %10d %10s %10s %10d %5d\n", time.Since(start).Round(time.Second), st.Conns, st.Bytes, st.Datagrams, mib(m.RSS), mib(m.Heap), m.Goroutines, m.FDs)
	}
wait:
	for {
		select {
		case <-tick.C:
			report()
		case <-s.ctx.Done():
			break wait
		}
	}
	clients.Wait()
	report()
	for _, ln := range lns {
		_ = ln.Close()
	}
	if pc != nil {
		_ = pc.Close()
	}
	ticker.Cancel()
	servers.Wait()
	if err := ticker.Wait(context.Background()); err != nil {
		s.fail(fmt.Errorf("ticker task: %w", err))
	}
	if s.c.ticks.Load() == 0 {
		s.fail(errors.New("the ticker task never ran"))
	}
	return s.err
}

// Request header: kind byte, then the size as 8 decimal digits.
const (
	kindEcho     = 'e'
	kindEchoSrvC = 'c' // echo, then the server closes first
	kindSlow     = 's'
	kindDelay    = 'd'
)

func header(kind byte, n int) []byte { return fmt.Appendf(nil, "%c%08d", kind, n) }

// serve accepts and answers each conn in a goroutine, or a hub task.
func (s *soaker) serve(ln net.Listener, tasks bool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(fmt.Errorf("accept: %w", err))
			}
			return
		}
		if tasks {
			t, err := s.h.Go(func(context.Context) error { s.answer(c, func(d time.Duration) { _ = s.h.Sleep(d) }); return nil })
			if err != nil {
				_ = c.Close()
				if !s.h.Closed() {
					s.fail(fmt.Errorf("hub.Go: %w", err))
				}
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = t.Wait(context.Background()) }()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.answer(c, time.Sleep) }()
	}
}

// answer serves one request; errors the client provoked (it gave up, it
// timed out) end it quietly. sleep is time.Sleep, or Hub.Sleep in a task.
func (s *soaker) answer(c net.Conn, sleep func(time.Duration)) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := make([]byte, 9)
	if _, err := io.ReadFull(c, h); err != nil {
		return
	}
	n, err := strconv.Atoi(string(h[1:]))
	if err != nil {
		s.fail(fmt.Errorf("server: bad header %q", h))
		return
	}
	switch h[0] {
	case kindEcho, kindEchoSrvC, kindDelay:
		buf := make([]byte, n)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if h[0] == kindDelay {
			sleep(100 * time.Millisecond)
		}
		_, _ = c.Write(buf)
		if h[0] == kindEchoSrvC {
			return // the server closes first
		}
		_, _ = c.Read(make([]byte, 1)) // until the client closes
	case kindSlow:
		_, _ = c.Write(payload(0, n))
	default:
		s.fail(fmt.Errorf("server: bad header %q", h))
	}
}

// payload is n bytes that depend on seed, so a byte of another
// connection's is caught.
func payload(seed uint64, n int) []byte {
	p := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
	return p
}

func (s *soaker) dial(ln net.Listener) (net.Conn, error) {
	a := ln.Addr()
	if s.dials {
		return s.h.DialContext(s.ctx, a.Network(), a.String())
	}
	var d net.Dialer
	return d.DialContext(s.ctx, a.Network(), a.String())
}

// check turns a client's error into a failure unless the run is ending.
func (s *soaker) check(what string, err error) bool {
	if err == nil {
		return true
	}
	if !s.stopping() {
		s.fail(fmt.Errorf("%s: %w", what, err))
	}
	return false
}

func (s *soaker) churn(ln net.Listener, r *rand.Rand) {
	c, err := s.dial(ln)
	if !s.check("dial", err) {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	kind := byte(kindEcho)
	if r.IntN(3) == 0 {
		kind = kindEchoSrvC
	}
	n := 1 + r.IntN(64<<10)
	p := payload(r.Uint64(), n)
	go func() { _, _ = c.Write(append(header(kind, n), p...)) }()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); !s.check("echo read", err) {
		return
	}
	if !bytes.Equal(got, p) {
		s.fail(fmt.Errorf("echo of %d bytes came back different", n))
		return
	}
	if kind == kindEchoSrvC {
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, net.ErrClosed) {
			s.check("read after the server's close", fmt.Errorf("want EOF, got %v", err))
			return
		}
	}
	s.c.conns.Add(1)
	s.c.bytes.Add(int64(n))
}

func (s *soaker) slowReader(ln net.Listener) {
	c, err := s.dial(ln)
	if !s.check("dial", err) {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const n = 1 << 20
	if _, err := c.Write(header(kindSlow, n)); !s.check("slow reader request", err) {
		return
	}
	want := payload(0, n)
	buf := make([]byte, 4096)
	for off := 0; off < n; {
		m, err := c.Read(buf)
		if !s.check("slow read", err) {
			return
		}
		if !bytes.Equal(buf[:m], want[off:off+m]) {
			s.fail(fmt.Errorf("slow reader: byte %d..%d differs", off, off+m))
			return
		}
		off += m
		if off%(64<<10) < m {
			time.Sleep(time.Millisecond)
		}
	}
	s.c.conns.Add(1)
	s.c.bytes.Add(n)
	s.c.slow.Add(1)
}

func (s *soaker) deadline(ln net.Listener, r *rand.Rand) {
	c, err := s.dial(ln)
	if !s.check("dial", err) {
		return
	}
	defer c.Close()
	n := 1 + r.IntN(4096)
	p := payload(r.Uint64(), n)
	// The server answers 100 ms after the request arrives, so a reply
	// read less than 100 ms after start came from somewhere else; a 1-3
	// ms deadline set before the request expires first. start is taken
	// before the write: a goroutine descheduled between the write and a
	// later clock reading would otherwise see a punctual reply as early.
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(time.Duration(1+r.IntN(3)) * time.Millisecond))
	if _, err := c.Write(append(header(kindDelay, n), p...)); !s.check("write", err) {
		return
	}
	got := make([]byte, n)
	m, err := io.ReadFull(c, got)
	if err == nil && time.Since(start) >= 100*time.Millisecond {
		// The deadline's timer ran later than the server's answer: a
		// starved machine, not a wrong result.
		s.c.conns.Add(1)
		s.c.bytes.Add(int64(n))
		return
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		if err == nil {
			err = errors.New("no error")
		}
		s.check("read past its deadline", fmt.Errorf("want os.ErrDeadlineExceeded after %v, got %w (%s %s; %d bytes, the ones sent: %v)",
			time.Since(start), err, ln.Addr(), c.LocalAddr(), m, bytes.Equal(got[:m], p[:m])))
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, got[m:]); !s.check("read after the deadline", err) {
		return
	}
	if !bytes.Equal(got, p) {
		s.fail(fmt.Errorf("echo after an expired deadline came back different"))
		return
	}
	s.c.conns.Add(1)
	s.c.bytes.Add(int64(n))
	s.c.deadlines.Add(1)
}

func (s *soaker) udpEcho(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(fmt.Errorf("udp echo: %w", err))
			}
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

func (s *soaker) datagrams(server net.PacketConn, r *rand.Rand) {
	var (
		c   net.Conn
		err error
	)
	if s.dials {
		c, err = s.h.Dial("udp", server.LocalAddr().String())
	} else {
		c, err = net.Dial("udp", server.LocalAddr().String())
	}
	if !s.check("dial udp", err) {
		return
	}
	defer c.Close()
	for range 10 {
		p := payload(r.Uint64(), 1+r.IntN(1400))
		if _, err := c.Write(p); !s.check("udp write", err) {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		got := make([]byte, 2048)
		n, err := c.Read(got)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.c.lost.Add(1)
			continue
		}
		if !s.check("udp read", err) {
			return
		}
		if !bytes.Equal(got[:n], p) {
			// A late echo of an earlier (lost-in-time) datagram: not
			// an error, but counted as lost.
			s.c.lost.Add(1)
			continue
		}
		s.c.dgrams.Add(1)
		s.c.bytes.Add(int64(n))
	}
}
