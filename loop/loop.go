// Package loop defines the narrow event-loop contract that every evhub
// backend implements, the registry through which backends are found by
// name, and the helpers backends share so that none writes them twice: a
// timer heap ([TimerHeap]), a cross-goroutine post queue ([PostQueue], a
// [Queue] of functions; a backend that hands the loop typed events uses a
// Queue of its own type), a relay from os/signal to the loop ([SignalRelay]), and the whole core of a
// loop whose goroutine sleeps on a Go channel ([Driver]).
//
// The contract is modelled on gevent's ILoop and libev's watchers, in Go
// idiom:
//
//   - Callbacks of one loop run one at a time on the goroutine that runs the
//     loop (the "loop goroutine"), never concurrently, and in plain Go:
//     never inside a cgo callback, so a callback may resume a coroutine
//     (iter.Pull), which the scheduler's cooperative tasks rely on. A C loop
//     records events during its poll and dispatches them after it returns.
//     Every method but [Loop.Post] and [Loop.Stop] is called from that
//     goroutine (or from a coroutine it is resuming), or before Run starts,
//     or after it has returned.
//   - [Loop.Watch] is level-triggered: a ready, armed watcher fires on every
//     iteration until its fd is drained or the watcher is modified or
//     stopped. Error and hang-up conditions are reported as readiness in the
//     directions that are armed, so the next syscall surfaces the error.
//     After [Watcher.Stop] returns, that watcher's callback never runs again,
//     even if its event was already collected in the current iteration. The
//     caller deregisters an fd (stops its watcher) before closing it.
//   - Timers are never early; earlier deadlines fire first and equal
//     deadlines fire in creation order. A negative or zero duration fires on
//     the next iteration, like time.AfterFunc.
//   - Signals are delivered on the loop goroutine. The Go runtime owns the
//     process's signal handlers, so every backend relays os/signal into Post
//     ([SignalRelay]); no backend installs a C signal handler.
//   - Post is the only method that is safe from any goroutine (with Stop):
//     each posted function runs exactly once, in FIFO order per poster, and a
//     loop blocked in its poll wakes promptly. Post on a closed loop returns
//     [ErrClosed].
//   - Close releases every goroutine and fd the loop made.
//
// What a backend cannot do it reports with an error wrapping
// [errors.ErrUnsupported] and declares through [Limited], so the conformance
// suite can show the case as "n/a" with the reason instead of passing it.
// Extra powers are optional interfaces discovered by type assertion, in the
// manner of database/sql/driver: [EdgeWatcher] for edge-triggered
// registrations, [Completer] for I/O the loop does itself (completions),
// and, on watchers, [Quieter], a hint that a watcher's callbacks ready no
// goroutine that must run before the loop polls again.
package loop

import (
	"errors"
	"os"
	"time"
)

// Events is a set of readiness conditions on a file descriptor.
type Events uint8

const (
	// Readable: a read (or accept) would not block. Also reported on EOF,
	// hang-up and socket errors, so that the next read surfaces them.
	Readable Events = 1 << iota
	// Writable: a write (or a pending connect) would not block. Also
	// reported on hang-up and socket errors.
	Writable
)

// String returns "r", "w", "rw" or "-".
func (e Events) String() string {
	switch e & (Readable | Writable) {
	case Readable:
		return "r"
	case Writable:
		return "w"
	case Readable | Writable:
		return "rw"
	}
	return "-"
}

// ErrClosed is returned by operations on a loop that has been closed.
var ErrClosed = errors.New("loop: closed")

// Loop is an event loop: I/O readiness, timers, signals and cross-goroutine
// posts, dispatched one callback at a time on the loop goroutine.
type Loop interface {
	// Name is the backend's registered name, e.g. "netpoll".
	Name() string

	// Watch arms a level-triggered watcher for ev on the non-blocking fd.
	// cb receives the subset of ev that is ready. An invalid fd is an error
	// wrapping the syscall's (EBADF); ev must not be empty.
	Watch(fd int, ev Events, cb func(Events)) (IOWatcher, error)

	// Timer calls cb once after `after`, then every `repeat` if repeat > 0.
	Timer(after, repeat time.Duration, cb func()) Timer

	// Signal calls cb on the loop goroutine each time sig arrives.
	Signal(sig os.Signal, cb func(os.Signal)) (Watcher, error)

	// Post queues fn to run on the loop goroutine; safe from any goroutine.
	Post(fn func()) error

	// Run runs the loop until Stop or Close.
	Run() error

	// RunOnce runs one iteration: if block, it waits for at least one event
	// (gevent's run(once=True)); otherwise it only handles what is ready
	// (run(nowait=True)).
	RunOnce(block bool) error

	// Stop makes Run return after the current iteration; safe from any
	// goroutine. A later Run starts again.
	Stop()

	// Now is the loop's current time (monotonic).
	Now() time.Time

	// Close stops the loop and releases everything it holds. Functions
	// posted before Close are run by it, so none is dropped. It must not be
	// called while Run is executing on another goroutine: Stop, wait for
	// Run to return, then Close.
	Close() error
}

// Watcher is a registration that can be cancelled.
type Watcher interface {
	// Stop cancels the watcher: once Stop returns, its callback never runs
	// again. Stop is idempotent.
	Stop() error
}

// IOWatcher is a readiness watcher on one fd.
type IOWatcher interface {
	Watcher
	// Modify changes the armed events; 0 pauses the watcher without
	// deregistering the fd.
	Modify(ev Events) error
	// Events reports the armed events.
	Events() Events
}

// Quieter is an optional interface of the [IOWatcher] of a loop that
// yields (runtime.Gosched, [Batch]) after each fd's callbacks, so that
// goroutines they readied run before it polls again. Quiet tells it that
// this watcher's callbacks ready no goroutine that must run that soon: it
// then skips that yield after them, and what they did ready runs at the
// yield the loop makes before it blocks, or on another P. A callback
// loop (package reactor) whose handlers run on the loop goroutine says so
// of its connections; the scheduler, whose callbacks wake the goroutines
// blocked in Read and Write, does not. Loops that yield once per poll, or
// never, have no use for the hint and need not implement it.
type Quieter interface {
	// Quiet marks the watcher's callbacks as readying nothing urgent.
	Quiet()
}

// Timer is a pending (or repeating) timer.
type Timer interface {
	// Stop prevents the timer from firing and reports whether it was
	// pending.
	Stop() bool
	// Reset re-arms the timer to fire after `after`, then every `repeat`,
	// and reports whether it was pending.
	Reset(after, repeat time.Duration) bool
}

// EdgeWatcher is an optional capability of loops that can register an fd
// edge-triggered: the callback runs once each time the fd becomes ready,
// and an fd that stays ready fires no more. A registration that never needs
// re-arming lets the scheduler wait on an fd without a Post per wait (the
// Go runtime's pollDesc design); see package scheduler for the numbers.
// Callbacks still run on the loop goroutine, one at a time.
type EdgeWatcher interface {
	WatchEdge(fd int, ev Events, cb func(Events)) (IOWatcher, error)
}
