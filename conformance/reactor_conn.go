package conformance

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/reactor"
)

// eofFuncs is Funcs with OnEOF (reactor.EOFHandler).
type eofFuncs struct {
	reactor.Funcs
	eof func(c *reactor.Conn)
}

func (f eofFuncs) OnEOF(c *reactor.Conn) { f.eof(c) }

func reactorConnCases() []reactorCase {
	return []reactorCase{
		{"conn", "Echo", func(t *testing.T, e *rEnv) {
			_, addr := e.server(rEcho, reactor.Options{})
			var wg sync.WaitGroup
			for k := range 8 {
				c := e.dial(addr)
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(k), 1))
					off := 0
					for range 200 {
						n := 1 + rng.IntN(3000)
						if _, err := c.Write(rPattern(off, n)); !assert.NoError(t, err) {
							return
						}
						got := make([]byte, n)
						if _, err := io.ReadFull(c, got); !assert.NoError(t, err) {
							return
						}
						rCheckPattern(t, off, got)
						off += n
					}
				}()
			}
			wg.Wait()
		}},
		{"conn", "PeekNextDiscardPartialInput", func(t *testing.T, e *rEnv) {
			// Frames of a 4-byte length and a body, sent in pieces of random
			// sizes: the handler sees every split and answers each frame
			// with its length and the body's first and last byte.
			var checks atomic.Int64
			h := reactor.Funcs{Data: func(c *reactor.Conn) {
				for {
					hdr, err := c.Peek(4)
					if err != nil {
						if !errors.Is(err, io.ErrShortBuffer) || len(hdr) != c.InboundBuffered() {
							t.Errorf("Peek(4) with %d buffered: %d bytes, %v", c.InboundBuffered(), len(hdr), err)
						}
						return
					}
					n := int(binary.BigEndian.Uint32(hdr))
					if c.InboundBuffered() < 4+n {
						all, err := c.Peek(4 + n)
						if !errors.Is(err, io.ErrShortBuffer) || len(all) != c.InboundBuffered() {
							t.Errorf("Peek past the input: %d bytes, %v", len(all), err)
						}
						return
					}
					if d, err := c.Discard(4); d != 4 || err != nil {
						t.Errorf("Discard(4) = %d, %v", d, err)
					}
					body, err := c.Next(n)
					if err != nil || len(body) != n {
						t.Errorf("Next(%d) = %d bytes, %v", n, len(body), err)
						return
					}
					checks.Add(1)
					var out [6]byte
					binary.BigEndian.PutUint32(out[:], uint32(n))
					out[4], out[5] = body[0], body[n-1]
					_, _ = c.Write(out[:])
				}
			}}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			rng := rand.New(rand.NewPCG(7, 7))
			var stream []byte
			var want [][6]byte
			for range 300 {
				n := 1 + rng.IntN(200000)
				if rng.IntN(4) > 0 {
					n = 1 + rng.IntN(100)
				}
				body := rPattern(rng.IntN(1000), n)
				stream = binary.BigEndian.AppendUint32(stream, uint32(n))
				stream = append(stream, body...)
				var w [6]byte
				binary.BigEndian.PutUint32(w[:], uint32(n))
				w[4], w[5] = body[0], body[n-1]
				want = append(want, w)
			}
			go func() {
				for len(stream) > 0 {
					n := min(len(stream), 1+rng.IntN(9000))
					if _, err := c.Write(stream[:n]); err != nil {
						return
					}
					stream = stream[n:]
					if rng.IntN(8) == 0 {
						time.Sleep(200 * time.Microsecond)
					}
				}
			}()
			for i, w := range want {
				var got [6]byte
				_, err := io.ReadFull(c, got[:])
				require.NoError(t, err, "reply %d", i)
				require.Equal(t, w, got, "reply %d", i)
			}
			require.EqualValues(t, len(want), checks.Load())
		}},
		{"conn", "AddressesAndContext", func(t *testing.T, e *rEnv) {
			type seen struct{ local, remote net.Addr }
			ch := make(chan seen, 1)
			h := reactor.Funcs{
				Open: func(c *reactor.Conn) {
					c.SetContext(seen{c.LocalAddr(), c.RemoteAddr()})
				},
				Data: func(c *reactor.Conn) {
					_, _ = c.Discard(-1)
					ch <- c.Context().(seen)
				},
			}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			_, err := c.Write([]byte("x"))
			require.NoError(t, err)
			s := <-ch
			require.IsType(t, &net.TCPAddr{}, s.local)
			require.IsType(t, &net.TCPAddr{}, s.remote)
			require.Equal(t, c.RemoteAddr().String(), s.local.String())
			require.Equal(t, c.LocalAddr().String(), s.remote.String())
		}},
		{"conn", "CloseWrite", func(t *testing.T, e *rEnv) {
			got := make(chan string, 16)
			rec := newCloseRec()
			h := reactor.Funcs{
				Data: func(c *reactor.Conn) {
					// A loop may give the input in pieces: what came so
					// far is the connection's context.
					b, _ := c.Next(-1)
					got <- string(b)
					seen, _ := c.Context().(string)
					c.SetContext(seen + string(b))
					if seen+string(b) == "bye" {
						_, _ = c.Write([]byte("ok"))
						assert.NoError(t, c.CloseWrite())
						_, err := c.Write([]byte("late"))
						assert.ErrorIs(t, err, net.ErrClosed, "Write after CloseWrite")
					}
				},
				Close: rec.onClose,
			}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			_, err := c.Write([]byte("bye"))
			require.NoError(t, err)
			all, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Equal(t, "ok", string(all), "output before the half-close, then EOF")
			gather := func(n int) string {
				var s string
				for len(s) < n {
					s += <-got
				}
				return s
			}
			require.Equal(t, "bye", gather(3))
			_, err = c.Write([]byte("more"))
			require.NoError(t, err)
			require.Equal(t, "more", gather(4), "the server still reads after CloseWrite")
			require.NoError(t, c.Close())
			require.ErrorIs(t, rec.next(t, "peer close"), io.EOF)
		}},
		{"conn", "PeerHalfClose", func(t *testing.T, e *rEnv) {
			rec := newCloseRec()
			var n atomic.Int64
			h := eofFuncs{
				Funcs: reactor.Funcs{
					Data:  func(c *reactor.Conn) { b, _ := c.Next(-1); n.Add(int64(len(b))) },
					Close: rec.onClose,
				},
				eof: func(c *reactor.Conn) {
					_, _ = c.Write([]byte("got it"))
					_ = c.Close()
				},
			}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			_, err := c.Write(make([]byte, 1000))
			require.NoError(t, err)
			require.NoError(t, c.(*net.TCPConn).CloseWrite())
			all, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Equal(t, "got it", string(all), "the server answers after the peer's EOF")
			require.NoError(t, rec.next(t, "Close after OnEOF"))
			require.EqualValues(t, 1000, n.Load())

			// Without OnEOF the peer's EOF closes the connection, reason io.EOF,
			// after what was pending is sent.
			rec2 := newCloseRec()
			_, addr2 := e.server(reactor.Funcs{Data: rEcho.Data, Close: rec2.onClose}, reactor.Options{})
			c2 := e.dial(addr2)
			_, err = c2.Write([]byte("abc"))
			require.NoError(t, err)
			require.NoError(t, c2.(*net.TCPConn).CloseWrite())
			all, err = io.ReadAll(c2)
			require.NoError(t, err)
			require.Equal(t, "abc", string(all))
			require.ErrorIs(t, rec2.next(t, "peer EOF"), io.EOF)
		}},
		{"conn", "CloseMidWrite", func(t *testing.T, e *rEnv) {
			// Server side: Close with 8 MiB pending sends all of it first.
			const size = 8 << 20
			rec := newCloseRec()
			h := reactor.Funcs{
				Open: func(c *reactor.Conn) {
					_, _ = c.Write(rPattern(0, size))
					assert.NoError(t, c.Close())
					_, err := c.Write([]byte("x"))
					assert.ErrorIs(t, err, net.ErrClosed, "Write after Close")
					assert.ErrorIs(t, c.Close(), net.ErrClosed, "second Close")
				},
				Close: rec.onClose,
			}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			all, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Len(t, all, size)
			rCheckPattern(t, 0, all)
			require.NoError(t, rec.next(t, "server Close"))

			// Peer side: the client closes while the server writes.
			rec2 := newCloseRec()
			h2 := reactor.Funcs{
				Data: func(c *reactor.Conn) {
					_, _ = c.Discard(-1)
					_, _ = c.Write(make([]byte, 4<<20))
				},
				Close: rec2.onClose,
			}
			_, addr2 := e.server(h2, reactor.Options{HighWater: 16 << 20})
			c2 := e.dial(addr2)
			_, err = c2.Write([]byte("go"))
			require.NoError(t, err)
			_, err = io.ReadFull(c2, make([]byte, 1<<20))
			require.NoError(t, err)
			require.NoError(t, c2.(*net.TCPConn).SetLinger(0))
			require.NoError(t, c2.Close())
			reason := rec2.next(t, "peer reset mid-write")
			require.Error(t, reason)
			// The server goes on.
			c3 := e.dial(addr)
			_, err = io.ReadAll(c3)
			require.NoError(t, err)
		}},
		{"conn", "PanicClosesConnection", func(t *testing.T, e *rEnv) {
			rec := newCloseRec()
			h := reactor.Funcs{
				Data: func(c *reactor.Conn) {
					b, _ := c.Peek(-1)
					switch {
					case string(b) == "boom":
						panic("boom")
					case strings.HasPrefix("boom", string(b)):
						return // a loop may give it in pieces: wait for the rest
					}
					b, _ = c.Next(-1)
					_, _ = c.Write(b)
				},
				Close: rec.onClose,
			}
			_, addr := e.server(h, reactor.Options{})
			good := e.dial(addr)
			bad := e.dial(addr)
			_, err := bad.Write([]byte("boom"))
			require.NoError(t, err)
			reason := rec.next(t, "panicking handler")
			var pe *reactor.PanicError
			require.ErrorAs(t, reason, &pe)
			require.Equal(t, "boom", pe.Value)
			require.NotEmpty(t, pe.Stack)
			_, err = bad.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "the panicking connection is closed")
			_, err = good.Write([]byte("still"))
			require.NoError(t, err)
			buf := make([]byte, 5)
			_, err = io.ReadFull(good, buf)
			require.NoError(t, err)
			require.Equal(t, "still", string(buf), "the server goes on")
		}},
		{"conn", "BadInput", func(t *testing.T, e *rEnv) {
			_, err := reactor.New(nil, reactor.Options{NewLoop: e.open})
			require.Error(t, err, "nil handler")
			_, err = reactor.New(rEcho, reactor.Options{NewLoop: e.open, HighWater: 10, LowWater: 20})
			require.Error(t, err, "LowWater above HighWater")
			_, err = reactor.New(rEcho, reactor.Options{Backend: "no-such-backend"})
			require.ErrorContains(t, err, "no-such-backend", "unknown backend")

			s := e.newServer(rEcho, reactor.Options{})
			_, err = s.Listen("tcp", "127.0.0.1:port")
			var oe *net.OpError
			require.ErrorAs(t, err, &oe, "bad address")
			require.Equal(t, "listen", oe.Op)
			_, err = s.Listen("udp", "127.0.0.1:0")
			require.Error(t, err, "a datagram network")

			held, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer held.Close()
			_, err = s.Listen("tcp", held.Addr().String())
			require.ErrorAs(t, err, &oe, "port in use")
			require.Contains(t, err.Error(), "address already in use")

			require.NoError(t, s.Close())
			require.NoError(t, s.Close(), "second Close")
			_, err = s.Listen("tcp", "127.0.0.1:0")
			require.ErrorIs(t, err, reactor.ErrServerClosed, "Listen after Close")
			require.ErrorIs(t, s.Shutdown(context.Background()), nil)
		}},
		{"conn", "UseAfterClose", func(t *testing.T, e *rEnv) {
			conns := make(chan *reactor.Conn, 1)
			rec := newCloseRec()
			s, addr := e.server(reactor.Funcs{Open: func(c *reactor.Conn) { conns <- c }, Close: rec.onClose}, reactor.Options{})
			c := e.dial(addr)
			rc := <-conns
			done := make(chan error, 1)
			require.NoError(t, rc.Post(func(rc *reactor.Conn) { done <- rc.Close() }))
			require.NoError(t, <-done)
			require.NoError(t, rec.next(t, "Close"))
			_, err := c.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF)
			// AsyncWrite to a closed connection: the callback reports it.
			cbErr := make(chan error, 1)
			require.NoError(t, rc.AsyncWrite([]byte("x"), func(_ *reactor.Conn, err error) { cbErr <- err }))
			require.ErrorIs(t, <-cbErr, net.ErrClosed)
			require.NoError(t, s.Close())
			require.ErrorIs(t, rc.AsyncWrite([]byte("x"), nil), reactor.ErrServerClosed)
			require.ErrorIs(t, rc.Post(func(*reactor.Conn) {}), reactor.ErrServerClosed)
		}},
	}
}
