package conformance

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/reactor"
)

// tickFuncs is Funcs with OnTick (reactor.Ticker).
type tickFuncs struct {
	reactor.Funcs
	tick func(now time.Time) time.Duration
}

func (f tickFuncs) OnTick(now time.Time) time.Duration { return f.tick(now) }

// drainFuncs is Funcs with OnDrain (reactor.DrainHandler).
type drainFuncs struct {
	reactor.Funcs
	drain func(c *reactor.Conn)
}

func (f drainFuncs) OnDrain(c *reactor.Conn) { f.drain(c) }

func reactorExtraCases() []reactorCase {
	return []reactorCase{
		{"conn", "Tick", func(t *testing.T, e *rEnv) {
			var n atomic.Int64
			done := make(chan struct{})
			var last time.Time
			h := tickFuncs{tick: func(now time.Time) time.Duration {
				if !last.IsZero() && now.Sub(last) < 20*time.Millisecond {
					t.Errorf("tick %v after the last one, asked for 20ms", now.Sub(last))
				}
				last = now
				if n.Add(1) == 5 {
					close(done)
					return 0 // no more ticks
				}
				return 20 * time.Millisecond
			}}
			e.newServer(h, reactor.Options{})
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%d ticks in 10s", n.Load())
			}
			time.Sleep(60 * time.Millisecond)
			require.EqualValues(t, 5, n.Load(), "a zero delay stops the ticks")
		}},
		{"write", "DrainPacedProducer", func(t *testing.T, e *rEnv) {
			// A producer that writes while the output is under the high
			// mark and resumes in OnDrain: 16 MiB to a slow reader with at
			// most HighWater plus one chunk buffered.
			const total, chunk, hw = 16 << 20, 64 << 10, 256 << 10
			var maxOut atomic.Int64
			produce := func(c *reactor.Conn) {
				off, _ := c.Context().(int)
				for off < total && c.OutboundBuffered() <= hw {
					_, _ = c.Write(rPattern(off, chunk))
					off += chunk
					if o := int64(c.OutboundBuffered()); o > maxOut.Load() {
						maxOut.Store(o)
					}
				}
				c.SetContext(off)
			}
			h := drainFuncs{
				Funcs: reactor.Funcs{Open: produce},
				drain: produce,
			}
			_, addr := e.server(h, reactor.Options{HighWater: hw, LowWater: hw / 4})
			c := e.dial(addr)
			buf := make([]byte, 16<<10)
			for off := 0; off < total; {
				n, err := c.Read(buf)
				require.NoError(t, err)
				rCheckPattern(t, off, buf[:n])
				off += n
				if off%(1<<20) < n {
					time.Sleep(time.Millisecond)
				}
			}
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := c.Read(buf)
			require.Error(t, err, "nothing past the end")
			require.NotErrorIs(t, err, io.EOF)
			require.LessOrEqual(t, maxOut.Load(), int64(hw+chunk), "the producer stopped at the mark")
		}},
	}
}
