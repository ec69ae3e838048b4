package conformance

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/reactor"
	"github.com/evhub/evhub/scheduler"
)

// needLoops skips the case as n/a on a loop that owns its sockets: its
// server has one loop, so a second one is refused with ErrUnsupported.
func (e *rEnv) needLoops() {
	e.t.Helper()
	e.needWatch(func() error {
		s, err := reactor.New(rEcho, reactor.Options{NewLoop: e.open, Loops: 2})
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Listen("tcp", "127.0.0.1:0")
		return err
	})
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
}

func balanceCase(b reactor.Balance) func(t *testing.T, e *rEnv) {
	return func(t *testing.T, e *rEnv) {
		e.needLoops()
		// 100 connections a loop. A client arrives once the server has
		// seen the previous one leave: a close not yet seen would skew the
		// choice, by as many closes as a busy loop lags behind (under the
		// chaos loop, 55 of 400), which measures the load, not the
		// balancing.
		const loops, clients = 4, 400
		s, addr := e.server(rEcho, reactor.Options{Loops: loops, Balance: b})
		rng := rand.New(rand.NewPCG(1, uint64(b)))
		var open []net.Conn
		for range clients {
			open = append(open, e.dial(addr))
		}
		// Clients keep reconnecting: a random one leaves, a new one comes.
		for range 400 {
			if b == reactor.RoundRobin {
				// Round-robin balances arrivals, not departures: here the
				// clients leave in arrival order.
				_ = open[0].Close()
				open = append(open[1:], e.dial(addr))
				continue
			}
			i := rng.IntN(len(open))
			_ = open[i].Close()
			require.Eventually(t, func() bool { return sum(s.ConnsPerLoop()) == len(open)-1 },
				5*time.Second, time.Millisecond, "the server sees a client leave: %v", s.ConnsPerLoop())
			open[i] = e.dial(addr)
		}
		for _, c := range open {
			roundTrip(t, c, "x")
		}
		var per []int
		require.Eventually(t, func() bool {
			per = s.ConnsPerLoop()
			return sum(per) == len(open)
		}, 5*time.Second, 10*time.Millisecond, "connections per loop %v", per)
		lo, hi := per[0], per[0]
		for _, n := range per {
			lo, hi = min(lo, n), max(hi, n)
		}
		t.Logf("%v: connections per loop %v", b, per)
		require.Positive(t, lo)
		require.LessOrEqual(t, float64(hi), 1.2*float64(lo), "busiest loop at most 1.2x the least busy: %v", per)
	}
}

func sum(ns []int) int {
	t := 0
	for _, n := range ns {
		t += n
	}
	return t
}

func reactorLoopCases() []reactorCase {
	return []reactorCase{
		{"loops", "BalanceRoundRobin", balanceCase(reactor.RoundRobin)},
		{"loops", "BalanceLeastConnections", balanceCase(reactor.LeastConnections)},
		{"loops", "ReusePort", func(t *testing.T, e *rEnv) {
			e.needLoops()
			s, addr := e.server(rEcho, reactor.Options{Loops: 2, Balance: reactor.ReusePort})
			for range 50 {
				roundTrip(t, e.dial(addr), "hello")
			}
			t.Logf("connections per loop with SO_REUSEPORT: %v", s.ConnsPerLoop())
		}},
		{"loops", "ShutdownGraceful", func(t *testing.T, e *rEnv) {
			rec := newCloseRec()
			s, addr := e.server(reactor.Funcs{Data: rEcho.Data, Close: rec.onClose}, reactor.Options{})
			a, b := e.dial(addr), e.dial(addr)
			roundTrip(t, a, "1")
			roundTrip(t, b, "1")
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				done <- s.Shutdown(ctx)
			}()
			// Accepting stops; open connections carry on.
			require.Eventually(t, func() bool {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Close()
				}
				return err != nil
			}, 5*time.Second, 5*time.Millisecond, "listener closed by Shutdown")
			roundTrip(t, a, "still here")
			require.NoError(t, a.Close())
			require.ErrorIs(t, rec.next(t, "a"), io.EOF)
			select {
			case err := <-done:
				t.Fatalf("Shutdown returned %v with a connection open", err)
			case <-time.After(50 * time.Millisecond):
			}
			require.NoError(t, b.Close())
			require.NoError(t, <-done, "every connection finished in time")
		}},
		{"loops", "ShutdownImmediate", func(t *testing.T, e *rEnv) {
			rec := newCloseRec()
			s, addr := e.server(reactor.Funcs{Data: rEcho.Data, Close: rec.onClose}, reactor.Options{})
			var cs []net.Conn
			for range 5 {
				c := e.dial(addr)
				roundTrip(t, c, "x")
				cs = append(cs, c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, s.Shutdown(ctx), context.DeadlineExceeded, "connections outlived the grace period")
			for range cs {
				require.ErrorIs(t, rec.next(t, "shutdown"), reactor.ErrServerClosed)
			}
			for _, c := range cs {
				_, err := c.Read(make([]byte, 1))
				require.Error(t, err, "closed by the server")
			}
			require.Zero(t, s.Conns())
		}},
		{"loops", "Churn5000", func(t *testing.T, e *rEnv) {
			loops := 1
			if loop.Supports(e.probeLoop(), loop.CapWatch) {
				loops = 2 // a loop that owns its sockets serves on one
			}
			s, addr := e.server(rEcho, reactor.Options{Loops: loops})
			const total, par = 5000, 25
			var wg sync.WaitGroup
			errs := make(chan error, par)
			for w := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < total; i += par {
						c, err := net.DialTimeout("tcp", addr, 5*time.Second)
						if err != nil {
							errs <- err
							return
						}
						_ = c.SetDeadline(time.Now().Add(10 * time.Second))
						msg := []byte{byte(i), byte(i >> 8)}
						_, err = c.Write(msg)
						got := make([]byte, 2)
						if err == nil {
							_, err = io.ReadFull(c, got)
						}
						_ = c.Close()
						if err != nil || got[0] != msg[0] || got[1] != msg[1] {
							errs <- errors.Join(err, errors.New("echo mismatch"))
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool { return s.Conns() == 0 }, 10*time.Second, 10*time.Millisecond,
				"every connection closed on the server (%d left)", s.Conns())
			// The case's leak check then requires fds and goroutines back at
			// their count before the case.
		}},
	}
}

func reactorClientCases() []reactorCase {
	return []reactorCase{
		{"dial", "Dial", func(t *testing.T, e *rEnv) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 512) // not io.Copy: its splice pipes outlive the case
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
			got := make(chan string, 1)
			s := e.newServer(reactor.Funcs{
				Open: func(c *reactor.Conn) { _, _ = c.Write([]byte("hello")) },
				Data: func(c *reactor.Conn) {
					if c.InboundBuffered() >= 5 {
						b, _ := c.Next(5)
						got <- string(b)
						_ = c.Close()
					}
				},
			}, reactor.Options{})
			if requireUnsupported(t, e.probeLoop(), loop.CapDial, func() error {
				_, err := s.Dial("tcp", ln.Addr().String(), time.Second)
				return err
			}) {
				return
			}
			c, err := s.Dial("tcp", ln.Addr().String(), 5*time.Second)
			require.NoError(t, err)
			require.NotNil(t, c)
			require.Equal(t, "hello", <-got)

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err = s.DialContext(ctx, "tcp", ln.Addr().String(), 0)
			require.ErrorIs(t, err, context.Canceled)
			dead, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			deadAddr := dead.Addr().String()
			dead.Close()
			_, err = s.Dial("tcp", deadAddr, time.Second)
			var oe *net.OpError
			require.ErrorAs(t, err, &oe, "refused")
			_, err = s.Dial("udp", deadAddr, time.Second)
			require.Error(t, err, "a datagram network")
		}},
		{"dial", "Enrol", func(t *testing.T, e *rEnv) {
			s := e.newServer(rEcho, reactor.Options{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			client := e.dial(ln.Addr().String())
			sc, err := ln.Accept()
			require.NoError(t, err)
			if requireUnsupported(t, e.probeLoop(), loop.CapWatch, func() error {
				_, err := s.Enrol(sc)
				return err
			}) {
				return
			}
			_, err = s.Enrol(sc)
			require.NoError(t, err)
			roundTrip(t, client, "enrolled")
		}},
		{"handover", "MidStream", func(t *testing.T, e *rEnv) {
			// The client sends a header line and, without waiting, 1 MiB;
			// the handler answers the header, hands the connection to a hub,
			// and a goroutine there reads the rest through net.Conn.
			l := e.probeLoop()
			if requireUnsupported(t, l, loop.CapWatch, func() error {
				res := make(chan error, 1)
				s, addr := e.server(reactor.Funcs{Open: func(c *reactor.Conn) {
					res <- c.HandOver(&scheduler.Hub{}, func(net.Conn, error) {})
				}}, reactor.Options{})
				defer s.Close()
				e.dial(addr)
				return <-res
			}) {
				return
			}
			hl, err := e.open()
			require.NoError(t, err)
			hub, err := scheduler.New(hl)
			require.NoError(t, err)
			e.mu.Lock()
			e.closers = append(e.closers, func() { _ = hub.Close() })
			e.mu.Unlock()
			const payload = 1 << 20
			sums := make(chan [32]byte, 1)
			h := reactor.Funcs{Data: func(c *reactor.Conn) {
				in, _ := c.Peek(-1)
				i := 0
				for i < len(in) && in[i] != '\n' {
					i++
				}
				if i == len(in) {
					return
				}
				_, _ = c.Discard(i + 1)
				_, _ = c.Write([]byte("upgraded\n"))
				assert.NoError(t, c.HandOver(hub, func(nc net.Conn, err error) {
					if !assert.NoError(t, err) {
						return
					}
					go func() {
						defer nc.Close()
						hsh := sha256.New()
						_, err := io.CopyN(hsh, nc, payload)
						assert.NoError(t, err)
						var sum [32]byte
						copy(sum[:], hsh.Sum(nil))
						_, err = nc.Write(sum[:])
						assert.NoError(t, err)
						sums <- sum
					}()
				}))
			}}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			body := rPattern(0, payload)
			go func() { _, _ = c.Write(append([]byte("HELLO\n"), body...)) }()
			line := make([]byte, len("upgraded\n"))
			_, err = io.ReadFull(c, line)
			require.NoError(t, err)
			require.Equal(t, "upgraded\n", string(line))
			var got [32]byte
			_, err = io.ReadFull(c, got[:])
			require.NoError(t, err)
			require.Equal(t, sha256.Sum256(body), got, "every byte reached the hub conn, in order")
			require.Equal(t, got, <-sums)
		}},
	}
}
