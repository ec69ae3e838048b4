//go:build linux

package gnet

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// The loop-level benchmarks of the contract (Post round trip, 100,000
// timers, readiness to a woken goroutine) are conformance.BenchmarkLoop,
// run for every backend by `go test ./conformance -bench BenchmarkBackends`.
// These measure what is particular to this backend.

// startRun runs l on a goroutine of its own until the benchmark ends.
func startRun(b *testing.B, l *Loop) {
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	b.Cleanup(func() {
		l.Stop()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
}

// BenchmarkYield shows loop.Batch's yield after a batch of callbacks: the
// same round trips with the loop yielding after a batch of callbacks
// (yield=on, the backend's behaviour) and without (yield=off). Compare
// with `benchstat -col /yield`.
//
//   - post: another goroutine Posts a function that wakes it (channel);
//   - ready: another goroutine writes a byte, an edge watcher's callback
//     reads it and wakes the goroutine;
//   - fanout: one readiness wakes 8 parked goroutines, and the writer
//     waits for all of them.
func BenchmarkYield(b *testing.B) {
	for _, yield := range []bool{true, false} {
		name := "yield=on"
		if !yield {
			name = "yield=off"
		}
		b.Run("case=post/"+name, func(b *testing.B) { benchYieldPost(b, yield) })
		b.Run("case=ready/"+name, func(b *testing.B) { benchYieldReady(b, yield, 1) })
		b.Run("case=fanout/"+name, func(b *testing.B) { benchYieldReady(b, yield, 8) })
	}
}

func benchYieldPost(b *testing.B, yield bool) {
	l := newLoop(b)
	l.yield = yield
	startRun(b, l)
	back := make(chan struct{}, 1)
	fn := func() { back <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Post(fn); err != nil {
			b.Fatal(err)
		}
		<-back
	}
}

func benchYieldReady(b *testing.B, yield bool, fan int) {
	l := newLoop(b)
	l.yield = yield
	a, peer := pair(b)
	chans := make([]chan struct{}, fan)
	for i := range chans {
		chans[i] = make(chan struct{}, 1)
	}
	var buf [64]byte
	_, err := l.WatchEdge(a, loop.Readable|loop.Writable, func(ev loop.Events) {
		if ev&loop.Readable == 0 {
			return
		}
		if n, _ := unix.Read(a, buf[:]); n > 0 {
			for _, c := range chans {
				c <- struct{}{}
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	startRun(b, l)
	// fan-1 parked goroutines, each woken per op, each acknowledging.
	var wg sync.WaitGroup
	acks := make(chan struct{}, fan)
	stop := make(chan struct{})
	for _, c := range chans[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-c:
					acks <- struct{}{}
				case <-stop:
					return
				}
			}
		}()
	}
	b.Cleanup(func() { close(stop); wg.Wait() })
	one := []byte{1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unix.Write(peer, one); err != nil {
			b.Fatal(err)
		}
		<-chans[0]
		for range fan - 1 {
			<-acks
		}
	}
}

// BenchmarkRunOnce is the price of RunOnce, which makes Polling return
// each time, against the number of watched fds: with one poller, kept
// and re-woken (mode=one, the default on Linux); with two, the running one
// replaced by a fresh one (mode=nested, the BSDs' way: the watched fds
// live in the other poller and are never registered again, but adding its
// epoll fd to a fresh poller costs the kernel a walk over them) or re-woken
// (mode=nested-reuse).
func BenchmarkRunOnce(b *testing.B) {
	for _, m := range modes {
		for _, n := range []int{0, 1000} {
			b.Run("mode="+m.name+"/fds="+strconv.Itoa(n), func(b *testing.B) {
				l := m.newLoop(b)
				for range n {
					a, _ := pair(b)
					if _, err := l.WatchEdge(a, loop.Readable, func(loop.Events) {}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := l.RunOnce(false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRearm is the re-arm that follows every fd's callbacks, with a
// timer pending whose deadline has not moved: no clock read, no syscall.
func BenchmarkRearm(b *testing.B) {
	l := newLoop(b)
	l.Timer(time.Hour, 0, func() {})
	b.ReportAllocs()
	for b.Loop() {
		l.rearm()
	}
}
