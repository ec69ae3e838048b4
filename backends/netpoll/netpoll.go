//go:build linux || darwin

package netpoll

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evhub/evhub/loop"
)

// Name is the name the backend registers under.
const Name = "netpoll"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// Loop is the netpoll event loop. Create it with [New] (or loop.Open
// ("netpoll")); see the package documentation for the design.
type Loop struct {
	wake   chan struct{} // one slot: a pending wake-up survives until the next wait
	stop   atomic.Bool   // Stop requested; Run consumes it
	closed atomic.Bool

	posts  *loop.PostQueue
	timers *loop.TimerHeap
	relay  *loop.SignalRelay
	sleep  *time.Timer // reused for timed waits

	// Readiness collected by waiter goroutines, in arrival order.
	readyMu    sync.Mutex
	ready      []*watcher
	readySpare []*watcher

	// Loop goroutine only.
	check      []*watcher // level re-checks (and arming checks) for the next iteration
	checkSpare []*watcher
	batch      []*watcher
	watchers   map[*watcher]struct{}

	waiters sync.WaitGroup // waiter goroutines of every watcher
}

var (
	_ loop.Loop        = (*Loop)(nil)
	_ loop.EdgeWatcher = (*Loop)(nil)
)

// New returns a new, not yet running loop.
func New() (*Loop, error) {
	l := &Loop{
		wake:     make(chan struct{}, 1),
		timers:   loop.NewTimerHeap(),
		watchers: map[*watcher]struct{}{},
		sleep:    time.NewTimer(time.Hour),
	}
	l.sleep.Stop()
	l.posts = loop.NewPostQueue(l.wakeup)
	l.relay = loop.NewSignalRelay(l.Post)
	return l, nil
}

// wakeup makes the loop's current or next wait return. It never blocks.
func (l *Loop) wakeup() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Name returns "netpoll".
func (l *Loop) Name() string { return Name }

// Now returns time.Now().
func (l *Loop) Now() time.Time { return time.Now() }

// Post queues fn to run on the loop goroutine; safe from any goroutine. It
// returns loop.ErrClosed after Close and loop.ErrNilFunc for nil.
func (l *Loop) Post(fn func()) error { return l.posts.Post(fn) }

// Stop makes Run return after the current iteration; safe from any
// goroutine. A Stop that arrives while Run is not running makes the next Run
// return at once, so a Stop racing with the start of Run is never lost.
func (l *Loop) Stop() {
	l.stop.Store(true)
	l.wakeup()
}

// Timer calls cb on the loop goroutine after `after`, then every repeat if
// repeat > 0. A nil cb makes a timer that fires without effect.
func (l *Loop) Timer(after, repeat time.Duration, cb func()) loop.Timer {
	if cb == nil {
		cb = func() {}
	}
	return l.timers.Add(after, repeat, cb)
}

// Signal calls cb on the loop goroutine each time sig arrives (through
// os/signal; see loop.SignalRelay).
func (l *Loop) Signal(sig os.Signal, cb func(os.Signal)) (loop.Watcher, error) {
	if l.closed.Load() {
		return nil, fmt.Errorf("netpoll: signal %v: %w", sig, loop.ErrClosed)
	}
	w, err := l.relay.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("netpoll: signal %v: %w", sig, err)
	}
	return w, nil
}

// Run runs the loop until Stop or Close. It returns an error wrapping
// loop.ErrClosed if the loop was already closed.
func (l *Loop) Run() error {
	if l.closed.Load() {
		return fmt.Errorf("netpoll: run: %w", loop.ErrClosed)
	}
	for !l.stop.Swap(false) && !l.closed.Load() {
		l.runOnce(true)
	}
	return nil
}

// RunOnce runs one iteration. If block, it waits until it has fired a
// timer, run a posted function or dispatched readiness, or until Stop or
// Close; otherwise it only handles what is ready now.
func (l *Loop) RunOnce(block bool) error {
	if l.closed.Load() {
		return fmt.Errorf("netpoll: run once: %w", loop.ErrClosed)
	}
	l.runOnce(block)
	return nil
}

func (l *Loop) runOnce(block bool) {
	for {
		n := l.iterate()
		if n > 0 || !block || l.stop.Load() || l.closed.Load() {
			return
		}
		l.wait()
	}
}

// iterate fires due timers, runs posts and dispatches readiness, and
// returns how many callbacks ran.
func (l *Loop) iterate() int {
	// Consume a pending wake-up first: whatever arrives after this sends a
	// new one, so the next wait cannot sleep through it.
	select {
	case <-l.wake:
	default:
	}
	n := l.timers.RunDue(time.Now())
	if l.closed.Load() {
		return n + 1
	}
	n += l.posts.Run()
	if l.closed.Load() {
		return n + 1
	}
	return n + l.dispatch()
}

// wait blocks until a wake-up or the next timer deadline.
func (l *Loop) wait() {
	if len(l.check) > 0 {
		return
	}
	d, ok := l.timers.Timeout(time.Now())
	if !ok {
		<-l.wake
		return
	}
	if d <= 0 {
		return
	}
	l.sleep.Reset(d)
	select {
	case <-l.wake:
	case <-l.sleep.C:
	}
	// Since Go 1.23 Stop guarantees no stale value is received later.
	l.sleep.Stop()
}

// Close stops every watcher, runs the functions posted before it, stops the
// signal relay and waits until every goroutine the loop started has exited.
// The caller's fds stay open. A second Close returns nil. Close must not run
// while Run executes on another goroutine: Stop, wait for Run, then Close.
func (l *Loop) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.relay.Close()
	l.posts.Close()
	var errs []error
	for w := range l.watchers {
		if err := w.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	l.waiters.Wait()
	l.sleep.Stop()
	l.readyMu.Lock()
	clear(l.ready)
	l.ready = nil
	l.readyMu.Unlock()
	clear(l.check)
	l.check = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netpoll: close: %w", err)
	}
	return nil
}
