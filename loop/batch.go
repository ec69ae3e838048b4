package loop

import (
	"runtime"
	"sync/atomic"
)

// Batch is the bookkeeping shared by loops whose goroutine blocks its OS
// thread in a poll (epoll_wait in gnet's Polling, ev_run in libev) and
// runs callbacks in batches between polls. It holds two rules, each
// written once here:
//
// The skipped wake-up. While the loop goroutine runs a batch, a Post needs
// no wake-up (an eventfd write, then its read and one more poll): the loop
// runs what was posted when the batch ends. The wake-up function asks
// [Batch.SkipWake]; the batch is bracketed by [Batch.Begin] and
// [Batch.End], and End reports whether a wake-up was skipped, so the loop
// runs its posts before it polls again. The two sides are ordered as in
// Dekker's protocol — the poster records the skip and then checks that the
// batch still runs; End clears the batch flag and then reads the record —
// so a Post racing with the end of a batch is either seen by End or wakes
// the loop, never stranded. A callback that readies a goroutine which
// posts back (a task woken by readiness) thus costs no wake-up.
//
// The yield. A goroutine that a callback readies (a channel send, a
// coroutine's waiter) goes into the running P's run-next slot; if the loop
// then blocks its thread in the poll, it stays there until sysmon steals
// it, 20 µs to 10 ms later. [Batch.Ran] records that callbacks ran, and
// [Batch.Yield], called before the loop polls again, runs
// runtime.Gosched once so that those goroutines run first (docs/design.md
// has the figures). A loop whose goroutine parks on a Go channel instead
// ([Driver]) needs neither rule: the runtime schedules around it.
//
// Begin, End, Ran and Yield are for the loop goroutine; SkipWake is safe
// from any goroutine. The zero value is ready to use. Loops that keep
// their own wake-up protocol (uring's sleeping flag, evio's kick) use Ran
// and Yield alone.
type Batch struct {
	inBatch atomic.Bool
	skipped atomic.Bool
	readied bool
}

// gosched is runtime.Gosched, replaced in tests.
var gosched = runtime.Gosched

// Begin marks the start of a batch of callbacks.
func (b *Batch) Begin() { b.inBatch.Store(true) }

// End marks the end of the batch and reports whether a wake-up was skipped
// during it: the loop must then run its posts before it polls again. Call
// it also when a batch is abandoned (a callback panicked), so that later
// posts wake the loop again.
func (b *Batch) End() (skipped bool) {
	b.inBatch.Store(false)
	return b.skipped.Swap(false)
}

// Skipped reports, and forgets, whether a wake-up was skipped since Begin
// or its last call, while the batch goes on: the loop runs those posts
// before it ends the batch, in the same iteration, instead of after one
// more poll. Posts made after the call still mark the batch for End.
func (b *Batch) Skipped() bool { return b.skipped.Swap(false) }

// SkipWake reports whether the wake-up a Post asks for may be skipped
// because a batch is running and its End will see the post. When it
// returns false the caller wakes the loop.
func (b *Batch) SkipWake() bool {
	if !b.inBatch.Load() {
		return false
	}
	b.skipped.Store(true)
	return b.inBatch.Load()
}

// Ran records that callbacks ran, and so may have readied goroutines.
func (b *Batch) Ran() { b.readied = true }

// Yield runs runtime.Gosched if callbacks ran since the last Yield, and
// reports whether it did. Call it before the loop blocks in its poll.
func (b *Batch) Yield() bool {
	if !b.readied {
		return false
	}
	b.readied = false
	gosched()
	return true
}
