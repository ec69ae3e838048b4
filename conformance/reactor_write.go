package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/reactor"
)

func reactorWriteCases() []reactorCase {
	return []reactorCase{
		{"write", "Writev", func(t *testing.T, e *rEnv) {
			h := reactor.Funcs{Data: func(c *reactor.Conn) {
				// Output of an earlier callback may still be on its way
				// (a loop may give the input in pieces, back to back).
				before := c.OutboundBuffered()
				b, _ := c.Next(-1)
				for range b {
					n, err := c.Writev([][]byte{[]byte("a"), nil, []byte("bc"), []byte("def")})
					assert.NoError(t, err)
					assert.Equal(t, 6, n)
				}
				assert.Equal(t, before+6*len(b), c.OutboundBuffered(), "buffered until the callback returns")
			}}
			_, addr := e.server(h, reactor.Options{})
			c := e.dial(addr)
			_, err := c.Write([]byte("xyz"))
			require.NoError(t, err)
			got := make([]byte, 18)
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			require.Equal(t, "abcdefabcdefabcdef", string(got))
		}},
		{"write", "SlowReader32MiB", func(t *testing.T, e *rEnv) {
			// An echo server and a client that writes 32 MiB while reading
			// slowly: backpressure must stop the server reading, so its
			// heap stays bounded, and every byte must come back in order.
			const total = 32 << 20
			_, addr := e.server(rEcho, reactor.Options{HighWater: 256 << 10, LowWater: 64 << 10})
			c := e.dial(addr)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			var peak atomic.Uint64
			stop := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Add(1)
			go func() {
				defer sampler.Done()
				var ms runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
				}
			}()
			werr := make(chan error, 1)
			go func() {
				chunk := 256 << 10
				for off := 0; off < total; off += chunk {
					if _, err := c.Write(rPattern(off, chunk)); err != nil {
						werr <- err
						return
					}
				}
				werr <- nil
			}()
			buf := make([]byte, 32<<10)
			for off := 0; off < total; {
				n, err := c.Read(buf)
				require.NoError(t, err, "read at %d", off)
				rCheckPattern(t, off, buf[:n])
				off += n
				if off%(1<<20) < n {
					time.Sleep(2 * time.Millisecond)
				}
			}
			require.NoError(t, <-werr)
			close(stop)
			sampler.Wait()
			growth := int64(peak.Load()) - int64(base)
			t.Logf("heap in use grew by at most %.1f MiB while 32 MiB went through", float64(growth)/(1<<20))
			// The client's own chunks are a few MiB of garbage; an
			// unbounded server buffer would hold tens of MiB.
			require.Less(t, growth, int64(24<<20), "heap growth bounded by backpressure")
		}},
		{"write", "AsyncWrite100Goroutines", func(t *testing.T, e *rEnv) {
			conns := make(chan *reactor.Conn, 1)
			s, addr := e.server(reactor.Funcs{Open: func(c *reactor.Conn) { conns <- c }}, reactor.Options{HighWater: 64 << 10})
			_ = s
			c := e.dial(addr)
			rc := <-conns
			const writers, each, size = 100, 200, 16
			var done, refused atomic.Int64
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; {
						msg := make([]byte, size)
						binary.BigEndian.PutUint32(msg, uint32(g))
						binary.BigEndian.PutUint32(msg[4:], uint32(i))
						copy(msg[8:], "........")
						ch := make(chan error, 1)
						err := rc.AsyncWrite(msg, func(_ *reactor.Conn, err error) { ch <- err })
						if errors.Is(err, reactor.ErrBackpressure) {
							refused.Add(1)
							time.Sleep(time.Millisecond)
							continue
						}
						if !assert.NoError(t, err) {
							return
						}
						if !assert.NoError(t, <-ch, "completion") {
							return
						}
						done.Add(1)
						i++
					}
				}()
			}
			next := make([]uint32, writers)
			buf := make([]byte, size)
			for range writers * each {
				_, err := io.ReadFull(c, buf)
				require.NoError(t, err)
				g, i := binary.BigEndian.Uint32(buf), binary.BigEndian.Uint32(buf[4:])
				require.Less(t, g, uint32(writers))
				require.Equal(t, next[g], i, "writer %d's messages in order", g)
				next[g]++
			}
			wg.Wait()
			require.EqualValues(t, writers*each, done.Load())
			t.Logf("%d writes refused for backpressure and retried", refused.Load())
		}},
		{"write", "AsyncWriteBackpressure", func(t *testing.T, e *rEnv) {
			conns := make(chan *reactor.Conn, 1)
			const hw = 256 << 10
			_, addr := e.server(reactor.Funcs{Open: func(c *reactor.Conn) { conns <- c }}, reactor.Options{HighWater: hw})
			c := e.dial(addr)
			rc := <-conns
			chunk := 64 << 10
			accepted := 0
			var berr error
			for i := 0; i < 1<<12; i++ {
				err := rc.AsyncWrite(rPattern(accepted, chunk), nil)
				if err != nil {
					berr = err
					break
				}
				accepted += chunk
				if i%8 == 7 {
					time.Sleep(time.Millisecond) // let the loop fill the kernel
				}
			}
			require.ErrorIs(t, berr, reactor.ErrBackpressure, "a peer that never reads must hit the mark")
			t.Logf("accepted %d KiB before backpressure (high water %d KiB; the rest is in the kernel)", accepted>>10, hw>>10)
			require.Less(t, accepted, 64<<20, "bounded")
			got := make([]byte, accepted)
			_, err := io.ReadFull(c, got)
			require.NoError(t, err)
			rCheckPattern(t, 0, got)
		}},
		{"write", "PostRunsOnLoop", func(t *testing.T, e *rEnv) {
			conns := make(chan *reactor.Conn, 1)
			_, addr := e.server(reactor.Funcs{Open: func(c *reactor.Conn) { conns <- c }}, reactor.Options{})
			c := e.dial(addr)
			rc := <-conns
			for i := range 100 {
				require.NoError(t, rc.Post(func(rc *reactor.Conn) { _, _ = fmt.Fprintf(rc, "%03d", i) }))
			}
			got := make([]byte, 300)
			_, err := io.ReadFull(c, got)
			require.NoError(t, err)
			for i := range 100 {
				require.Equal(t, fmt.Sprintf("%03d", i), string(got[3*i:3*i+3]), "posts run in order")
			}
		}},
		{"timeout", "ReadTimeout", func(t *testing.T, e *rEnv) {
			rec := newCloseRec()
			_, addr := e.server(reactor.Funcs{Data: rEcho.Data, Close: rec.onClose}, reactor.Options{ReadTimeout: 150 * time.Millisecond})
			start := time.Now()
			silent := e.dial(addr)
			talker := e.dial(addr)
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(30 * time.Millisecond):
					}
					if _, err := talker.Write([]byte("x")); err != nil {
						return
					}
					if _, err := io.ReadFull(talker, make([]byte, 1)); err != nil {
						return
					}
				}
			}()
			reason := rec.next(t, "read timeout")
			require.ErrorIs(t, reason, os.ErrDeadlineExceeded)
			require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "never early")
			_, err := silent.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF)
			time.Sleep(200 * time.Millisecond)
			close(stop)
			select {
			case err := <-rec.ch:
				t.Fatalf("the connection that kept sending was closed: %v", err)
			default:
			}
		}},
		{"timeout", "IdleTimeout", func(t *testing.T, e *rEnv) {
			rec := newCloseRec()
			conns := make(chan *reactor.Conn, 1)
			_, addr := e.server(reactor.Funcs{
				Open:  func(c *reactor.Conn) { c.SetIdleTimeout(150 * time.Millisecond); conns <- c },
				Close: rec.onClose,
			}, reactor.Options{})
			c := e.dial(addr)
			rc := <-conns
			// Output counts as activity: keep writing for a while.
			for range 6 {
				time.Sleep(50 * time.Millisecond)
				require.NoError(t, rc.AsyncWrite([]byte("y"), nil))
			}
			select {
			case err := <-rec.ch:
				t.Fatalf("closed while writing: %v", err)
			default:
			}
			start := time.Now()
			require.ErrorIs(t, rec.next(t, "idle timeout"), os.ErrDeadlineExceeded)
			require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
			all, err := io.ReadAll(c)
			require.NoError(t, err)
			require.Equal(t, "yyyyyy", string(all))
		}},
	}
}
