package loop_test

import (
	"iter"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// The machine facts the loops are designed around (docs/design.md), as
// benchmarks anyone can re-run:
//
//	go test -run '^$' -bench 'LockedThread|IterPull' -count 6 ./loop/

// BenchmarkLockedThreadWake is a round trip between a "loop" goroutine
// and a parked goroutine through channels, with the loop goroutine locked
// to its OS thread (runtime.LockOSThread) and not: a locked goroutine
// cannot hand its P to the goroutine it wakes, so every wake-up is a
// thread switch. fanout=64 wakes 64 parked goroutines per round.
func BenchmarkLockedThreadWake(b *testing.B) {
	for _, locked := range []bool{false, true} {
		name := "locked=false"
		if locked {
			name = "locked=true"
		}
		for _, fan := range []int{1, 64} {
			b.Run(name+"/fanout="+strconv.Itoa(fan), func(b *testing.B) {
				pings := make([]chan struct{}, fan)
				pong := make(chan struct{}, fan)
				var wg sync.WaitGroup
				for i := range pings {
					pings[i] = make(chan struct{})
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range pings[i] {
							pong <- struct{}{}
						}
					}()
				}
				done := make(chan struct{})
				b.ResetTimer()
				go func() {
					defer close(done)
					if locked {
						runtime.LockOSThread()
						defer runtime.UnlockOSThread()
					}
					for range b.N {
						for _, p := range pings {
							p <- struct{}{}
						}
						for range pings {
							<-pong
						}
					}
				}()
				<-done
				b.StopTimer()
				for _, p := range pings {
					close(p)
				}
				wg.Wait()
			})
		}
	}
}

// BenchmarkIterPull is one resume and yield of an iter.Pull coroutine,
// the switch a cooperative task costs.
func BenchmarkIterPull(b *testing.B) {
	next, stop := iter.Pull(func(yield func(int) bool) {
		for i := 0; yield(i); i++ {
		}
	})
	defer stop()
	b.ResetTimer()
	for range b.N {
		if _, ok := next(); !ok {
			b.Fatal("coroutine ended")
		}
	}
}
