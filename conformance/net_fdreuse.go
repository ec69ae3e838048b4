package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// netFDReuseCases: uvloop's bug (a cancelled connect closed its fd twice;
// the number went to another connection, whose data then leaked) as a
// stress case, on every network.
func netFDReuseCases() []netCase {
	return []netCase{
		{area: "stress", name: "FDReuseTaggedTCP", run: func(t *testing.T, e *env) { stressFDReuseTagged(t, e, "tcp") }},
		{area: "stress", name: "FDReuseTaggedUnix", run: func(t *testing.T, e *env) { stressFDReuseTagged(t, e, "unix") }},
	}
}

// A tagged frame: "conn id|sequence|" and filler that depends on the id,
// so that a byte of one connection read on another is caught.
const frameLen = 32

func frame(id, seq int) []byte {
	f := fmt.Appendf(nil, "%08d|%08d|", id, seq)
	for len(f) < frameLen {
		f = append(f, byte('a'+id%26))
	}
	return f
}

// Modes a client announces in its first frame's sequence number.
const (
	modeEcho       = iota // the server echoes every frame
	modeParkWrite         // the server never reads: the client's big write parks until the client closes
	modeServerPark        // the server parks a Read, then closes its conn under it
	numModes
)

// stressFDReuseTagged: 8 workers open, use and close 40 connections each,
// racing one another for descriptor numbers: dials cancelled
// before, during and after connect (when the network dials), conns closed
// by either end while the other's Read or Write is parked in them, and
// echoed frames tagged with their connection's id. Every frame a
// connection reads must carry its own id and the next sequence number;
// every parked call must end with net.ErrClosed when its conn is closed.
// A network that reuses a number while a stale watcher, waiter or pending
// close still refers to it shows it here as a foreign frame, a call that
// never returns, or a descriptor closed twice (the leak check after the
// case compares every descriptor the process had before).
func stressFDReuseTagged(t *testing.T, e *env, nw string) {
	s := e.net()
	ln := s.listen(nw)
	dialer := s.dialer()

	var (
		foreign   atomic.Int64
		failures  = make(chan string, 64)
		stats     [numModes]atomic.Int64
		cancelled atomic.Int64
		connected atomic.Int64
		parkDone  sync.Map // id -> chan struct{}: a parked-write client closed its conn
		srvWG     sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}
	readFrame := func(c net.Conn, id, seq int) error {
		buf := make([]byte, frameLen)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if want := frame(id, seq); string(buf) != string(want) {
			foreign.Add(1)
			fail("conn %d read %q, want %q", id, buf, want)
			return errors.New("foreign frame")
		}
		return nil
	}

	// The server: one goroutine per accepted conn.
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srvWG.Add(1)
			go func() {
				defer srvWG.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				head := make([]byte, frameLen)
				if _, err := io.ReadFull(c, head); err != nil {
					return // a client that gave up: fine
				}
				var id, mode int
				if _, err := fmt.Sscanf(string(head[:18]), "%08d|%08d|", &id, &mode); err != nil || string(head) != string(frame(id, mode)) {
					foreign.Add(1)
					fail("server read a foreign first frame %q", head)
					return
				}
				switch mode {
				case modeEcho:
					for seq := 0; ; seq++ {
						if err := readFrame(c, id, seq); err != nil {
							return
						}
						if _, err := c.Write(frame(id, seq)); err != nil {
							return
						}
					}
				case modeParkWrite:
					if ch, ok := parkDone.Load(id); ok {
						<-ch.(chan struct{})
					}
				case modeServerPark:
					r := goRead(c, make([]byte, 1))
					time.Sleep(time.Duration(id%3) * 300 * time.Microsecond)
					_ = c.Close()
					select {
					case res := <-r:
						if !errors.Is(res.err, net.ErrClosed) {
							fail("server conn %d: Read parked when Close came ended with %v", id, res.err)
						}
					case <-time.After(prompt):
						fail("server conn %d: Read parked when Close came still blocked after %v", id, prompt)
					}
				}
			}()
		}
	}()

	dial := func(ctx context.Context) (net.Conn, error) {
		return dialer.DialContext(ctx, nw, ln.Addr().String())
	}
	var nextID atomic.Int64
	const rounds = 40 // per worker
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			big := make([]byte, 16<<20)
			for range rounds {
				id := int(nextID.Add(1))
				// A dial cancelled at some stage (the network's own
				// dials only: a listen-only network is dialed by net).
				if e.dials && r.IntN(3) == 0 {
					ctx, cancel := context.WithCancel(context.Background())
					switch r.IntN(3) {
					case 0:
						cancel()
					case 1:
						time.AfterFunc(time.Duration(r.IntN(200))*time.Microsecond, cancel)
					default:
						var c2 context.CancelFunc
						ctx, c2 = context.WithTimeout(ctx, time.Duration(r.IntN(50)+1)*time.Microsecond)
						cancel = func() { c2() }
					}
					c, err := dial(ctx)
					cancel()
					if err != nil {
						// A deadline can fire in the poller before the
						// context's own timer: net then says os.ErrDeadlineExceeded.
						if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
							fail("cancelled dial: %v", err)
						}
						cancelled.Add(1)
						continue
					}
					// Connected before the cancel: the conn must work
					// (or it was refused after connecting, issue 16523).
					_ = c.Close()
					continue
				}
				mode := r.IntN(numModes)
				var done chan struct{}
				if mode == modeParkWrite {
					done = make(chan struct{})
					parkDone.Store(id, done)
				}
				c, err := dial(context.Background())
				if err != nil {
					fail("dial: %v", err)
					if done != nil {
						close(done)
					}
					return
				}
				s.e.track(c)
				connected.Add(1)
				stats[mode].Add(1)
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				if _, err := c.Write(frame(id, mode)); err != nil {
					fail("conn %d: first write: %v", id, err)
					_ = c.Close()
					continue
				}
				switch mode {
				case modeEcho:
					for seq := range 1 + r.IntN(20) {
						if _, err := c.Write(frame(id, seq)); err != nil {
							fail("conn %d: write: %v", id, err)
							break
						}
						if err := readFrame(c, id, seq); err != nil {
							fail("conn %d: read echo %d: %v", id, seq, err)
							break
						}
					}
					_ = c.Close()
				case modeParkWrite:
					// Alternate which direction is parked when Close comes.
					var ch <-chan readResult
					if id%2 == 0 {
						ch = goWrite(c, big)
					} else {
						ch = goRead(c, make([]byte, 1))
					}
					time.Sleep(time.Duration(r.IntN(3)) * 300 * time.Microsecond)
					_ = c.Close()
					select {
					case res := <-ch:
						if !errors.Is(res.err, net.ErrClosed) {
							fail("conn %d: call parked when Close came ended with %v", id, res.err)
						}
					case <-time.After(prompt):
						fail("conn %d: call parked when Close came still blocked after %v", id, prompt)
					}
					close(done)
				case modeServerPark:
					// The server closes under its parked Read: EOF here.
					buf := make([]byte, 1)
					if _, err := c.Read(buf); err == nil {
						foreign.Add(1)
						fail("conn %d read a byte nobody sent", id)
					} else if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
						fail("conn %d: read after the server's close: %v", id, err)
					}
					_ = c.Close()
				}
			}
		}()
	}
	wg.Wait()
	_ = ln.Close()
	<-srvDone
	srvWG.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if foreign.Load() > 0 {
		t.Errorf("%d frames were read on a connection they did not belong to", foreign.Load())
	}
	t.Logf("%d conns (echo %d, parked client call closed %d, parked server read closed %d), %d dials cancelled",
		connected.Load(), stats[modeEcho].Load(), stats[modeParkWrite].Load(), stats[modeServerPark].Load(), cancelled.Load())
}
