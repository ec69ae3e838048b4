//go:build unix

package conformance

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// BenchmarkLoop measures the loops that open returns. Sub-benchmarks, named
// for benchstat:
//
//   - post-roundtrip: another goroutine Posts a function that signals it
//     back (ns per round trip);
//   - timers-100k: schedule and fire 100,000 timers per op (also timers/s);
//   - ready-to-wakeup: a goroutine writes one byte into a socket pair, the
//     loop's level-triggered watcher fires, its callback reads the byte and
//     wakes the goroutine parked on a channel (ns per round trip);
//   - edge-ready-to-wakeup: the same through loop.EdgeWatcher, for loops
//     that implement it.
//
// Cases a loop cannot run are skipped with "n/a: ", as in TestLoop.
//
// Each sub-benchmark is also exported on its own (BenchmarkPostRoundTrip,
// BenchmarkTimers100k, BenchmarkReadyToWakeup, BenchmarkEdgeReadyToWakeup),
// so that a program can run one through testing.Benchmark, which reports a
// single result and none for sub-benchmarks.
func BenchmarkLoop(b *testing.B, open func() (loop.Loop, error)) {
	b.Run("post-roundtrip", func(b *testing.B) { BenchmarkPostRoundTrip(b, open) })
	b.Run("timers-100k", func(b *testing.B) { BenchmarkTimers100k(b, open) })
	b.Run("ready-to-wakeup", func(b *testing.B) { BenchmarkReadyToWakeup(b, open) })
	b.Run("edge-ready-to-wakeup", func(b *testing.B) { BenchmarkEdgeReadyToWakeup(b, open) })
}

// BenchmarkPostRoundTrip is BenchmarkLoop's "post-roundtrip": another
// goroutine Posts a function that signals it back; one op is one round
// trip (loop started, Post, the function runs on the loop, the poster
// wakes).
func BenchmarkPostRoundTrip(b *testing.B, open func() (loop.Loop, error)) {
	l, _ := openLoop(b, open)
	startRun(b, l)
	back := make(chan struct{}, 1)
	fn := func() { back <- struct{}{} }
	st := watchStall(b, back)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Post(fn); err != nil {
			b.Fatalf("Post: %v", err)
		}
		<-back
		if st.progress() {
			b.Fatalf("a posted function did not run within %v", bound)
		}
	}
}

// BenchmarkTimers100k is BenchmarkLoop's "timers-100k": one op schedules
// 100,000 one-shot timers (0–99 µs) and runs the loop until all have fired.
// It reports the metric "timers/s" (timers scheduled and fired per second).
func BenchmarkTimers100k(b *testing.B, open func() (loop.Loop, error)) {
	const n = 100_000
	l, _ := openLoop(b, open)
	fired := 0
	cb := func() { fired++ }
	b.ReportAllocs()
	for b.Loop() {
		fired = 0
		for i := range n {
			l.Timer(time.Duration(i%100)*time.Microsecond, 0, cb)
		}
		deadline := time.Now().Add(bound)
		for fired < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d timers fired within %v", fired, n, bound)
			}
			if err := l.RunOnce(true); err != nil { // timers wake it: no watchdog needed
				b.Fatalf("RunOnce: %v", err)
			}
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "timers/s")
}

// BenchmarkReadyToWakeup is BenchmarkLoop's "ready-to-wakeup": a goroutine
// writes one byte into a socket pair, the loop's level-triggered watcher
// fires, its callback reads the byte and wakes the goroutine parked on a
// channel; one op is that round trip. A loop that declares
// loop.CapWatch unsupported is skipped with "n/a: ".
func BenchmarkReadyToWakeup(b *testing.B, open func() (loop.Loop, error)) {
	benchReadyToWakeup(b, open, false)
}

// BenchmarkEdgeReadyToWakeup is BenchmarkLoop's "edge-ready-to-wakeup":
// BenchmarkReadyToWakeup through loop.EdgeWatcher, registered once for both
// directions as the scheduler does. A loop without it is skipped with
// "n/a: ".
func BenchmarkEdgeReadyToWakeup(b *testing.B, open func() (loop.Loop, error)) {
	benchReadyToWakeup(b, open, true)
}

func benchReadyToWakeup(b *testing.B, open opener, edge bool) {
	l, _ := openLoop(b, open)
	watch := l.Watch
	ev := loop.Readable
	if edge {
		ew, ok := l.(loop.EdgeWatcher)
		if !ok {
			b.Skip("n/a: no edge-triggered capability (the loop does not implement loop.EdgeWatcher)")
		}
		// As the scheduler registers a socket: once, both directions.
		watch, ev = ew.WatchEdge, loop.Readable|loop.Writable
	}
	requireUnsupported(b, l, loop.CapWatch, func() error {
		p := socketpair(b)
		w, err := watch(p.a, loop.Readable, func(loop.Events) {})
		if err == nil && w != nil {
			_ = w.Stop()
		}
		return err
	})
	p := socketpair(b)
	woke := make(chan struct{}, 1)
	var buf [64]byte
	w, err := watch(p.a, ev, func(got loop.Events) {
		if got&loop.Readable == 0 {
			return
		}
		n := 0
		for {
			m, err := unix.Read(p.a, buf[:])
			if err != nil || m <= 0 {
				break
			}
			n += m
			if !edge {
				break // level-triggered: one read, as a handler would
			}
		}
		if n > 0 {
			woke <- struct{}{}
		}
	})
	require.NoError(b, err, "Watch")
	b.Cleanup(func() { _ = w.Stop() })
	startRun(b, l)
	one := []byte{1}
	st := watchStall(b, woke)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unix.Write(p.b, one); err != nil {
			b.Fatalf("write: %v", err)
		}
		<-woke
		if st.progress() {
			b.Fatalf("the watcher did not fire within %v", bound)
		}
	}
}

// stall unblocks a benchmark whose loop stopped making progress, without
// a timer per op: a goroutine checks every bound that ops advanced and, if
// not, marks the benchmark stuck and sends on its wake-up channel.
type stall struct {
	ops   atomic.Int64
	stuck atomic.Bool
}

func watchStall(b *testing.B, wake chan<- struct{}) *stall {
	st := &stall{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(bound)
		defer tk.Stop()
		last := int64(-1)
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if n := st.ops.Load(); n != last {
					last = n
					continue
				}
				st.stuck.Store(true)
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
	}()
	b.Cleanup(func() { close(done); wg.Wait() })
	return st
}

// progress counts one op and reports whether the benchmark was stuck.
func (st *stall) progress() bool {
	st.ops.Add(1)
	return st.stuck.Load()
}
