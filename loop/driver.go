package loop

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// DriverConfig is what a backend supplies to a [Driver].
type DriverConfig struct {
	// Name prefixes the driver's errors ("netpoll: run: loop: closed").
	Name string

	// Dispatch, if not nil, runs the backend's own events (readiness its
	// goroutines collected, say) on the loop goroutine after the timers
	// and posts of each iteration, and returns how many callbacks ran. A
	// backend whose events all arrive as posts leaves it nil.
	Dispatch func() int

	// Pending, if not nil, reports that the backend already has work for
	// the next iteration, so the loop must not wait for a wake-up.
	Pending func() bool
}

// Driver is the loop driver shared by backends whose loop goroutine blocks
// on a Go channel rather than in a poller: netpoll (readiness comes from
// waiter goroutines) and evio (events come from evio's goroutines as
// posts). It owns the timer heap, the post queue, the signal relay, a
// one-slot wake channel and the stop and closed flags, and implements
// Post, Stop, Timer, Signal, Run, RunOnce and Now of [Loop]; a backend
// embeds it and adds Name, Watch and Close (which calls [Driver.Close]).
type Driver struct {
	name     string
	dispatch func() int
	pending  func() bool

	wake   chan struct{} // one slot: a pending wake-up survives until the next wait
	stop   atomic.Bool   // Stop requested; Run consumes it
	closed atomic.Bool

	posts  *PostQueue
	timers *TimerHeap
	relay  *SignalRelay
	sleep  *time.Timer // reused for timed waits
}

// NewDriver returns a driver for a new, not yet running loop.
func NewDriver(cfg DriverConfig) *Driver {
	d := &Driver{
		name:     cfg.Name,
		dispatch: cfg.Dispatch,
		pending:  cfg.Pending,
		wake:     make(chan struct{}, 1),
		timers:   NewTimerHeap(),
		sleep:    time.NewTimer(time.Hour),
	}
	d.sleep.Stop()
	d.posts = NewPostQueue(d.Wake)
	d.relay = NewSignalRelay(d.Post)
	return d
}

// Wake makes the loop's current or next wait return; safe from any
// goroutine. It never blocks, and a wake-up sent while the loop is busy is
// kept for its next wait: a buffered channel cannot lose one.
func (d *Driver) Wake() {
	select {
	case d.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Closed reports whether Close has begun; safe from any goroutine.
func (d *Driver) Closed() bool { return d.closed.Load() }

// Now returns time.Now().
func (d *Driver) Now() time.Time { return time.Now() }

// Post queues fn to run on the loop goroutine; safe from any goroutine. It
// returns ErrClosed after Close and ErrNilFunc for nil.
func (d *Driver) Post(fn func()) error { return d.posts.Post(fn) }

// Stop makes Run return after the current iteration; safe from any
// goroutine. A Stop that arrives while Run is not running makes the next
// Run return at once, so a Stop racing with the start of Run is never lost.
func (d *Driver) Stop() {
	d.stop.Store(true)
	d.Wake()
}

// Timer calls cb on the loop goroutine after `after`, then every repeat if
// repeat > 0. A nil cb makes a timer that fires without effect.
func (d *Driver) Timer(after, repeat time.Duration, cb func()) Timer {
	if cb == nil {
		cb = func() {}
	}
	return d.timers.Add(after, repeat, cb)
}

// Signal calls cb on the loop goroutine each time sig arrives (through
// os/signal; see [SignalRelay]).
func (d *Driver) Signal(sig os.Signal, cb func(os.Signal)) (Watcher, error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("%s: signal %v: %w", d.name, sig, ErrClosed)
	}
	w, err := d.relay.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("%s: signal %v: %w", d.name, sig, err)
	}
	return w, nil
}

// Run runs the loop until Stop or Close. It returns an error wrapping
// ErrClosed if the loop was already closed.
func (d *Driver) Run() error {
	if d.closed.Load() {
		return fmt.Errorf("%s: run: %w", d.name, ErrClosed)
	}
	for !d.stop.Swap(false) && !d.closed.Load() {
		d.runOnce(true)
	}
	return nil
}

// RunOnce runs one iteration. If block, it waits until it has fired a
// timer, run a posted function or dispatched a backend event, or until
// Stop or Close; otherwise it only handles what is ready now.
func (d *Driver) RunOnce(block bool) error {
	if d.closed.Load() {
		return fmt.Errorf("%s: run once: %w", d.name, ErrClosed)
	}
	d.runOnce(block)
	return nil
}

func (d *Driver) runOnce(block bool) {
	for {
		n := d.iterate()
		if n > 0 || !block || d.stop.Load() || d.closed.Load() {
			return
		}
		d.wait()
	}
}

// iterate fires due timers, runs posts and the backend's dispatch, and
// returns how many callbacks ran.
func (d *Driver) iterate() int {
	// Consume a pending wake-up first: whatever arrives after this sends a
	// new one, so the next wait cannot sleep through it.
	select {
	case <-d.wake:
	default:
	}
	n := d.timers.RunDue(time.Now())
	if d.closed.Load() {
		return n + 1
	}
	n += d.posts.Run()
	if d.dispatch == nil {
		return n
	}
	if d.closed.Load() {
		return n + 1
	}
	return n + d.dispatch()
}

// wait blocks until a wake-up or the next timer deadline.
func (d *Driver) wait() {
	if d.pending != nil && d.pending() {
		return
	}
	t, ok := d.timers.Timeout(time.Now())
	if !ok {
		<-d.wake
		return
	}
	if t <= 0 {
		return
	}
	d.sleep.Reset(t)
	select {
	case <-d.wake:
	case <-d.sleep.C:
	}
	// Since Go 1.23 Stop guarantees no stale value is received later.
	d.sleep.Stop()
}

// Close does the shared part of closing a loop, around the backend's own.
// It marks the loop closed, then calls drain (the backend's part that may
// still post, such as the Closed events of its connections), stops the
// signal relay, runs the functions posted so far and refuses later Posts,
// and finally calls release (the backend's part that must come after the
// last post ran). Either may be nil. Their errors are joined and wrapped
// with "<name>: close: ". A second Close calls neither and returns nil.
// Close must not run while Run executes on another goroutine: Stop, wait
// for Run, then Close.
func (d *Driver) Close(drain, release func() error) error {
	if d.closed.Swap(true) {
		return nil
	}
	var errs []error
	if drain != nil {
		errs = append(errs, drain())
	}
	d.relay.Close()
	d.posts.Close()
	if release != nil {
		errs = append(errs, release())
	}
	d.sleep.Stop()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", d.name, err)
	}
	return nil
}
