//go:build linux

package evio

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
const Name = "evio"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// unsupported is what evio cannot do, with the reasons (loop.Limited).
var unsupported = map[loop.Capability]string{
	loop.CapWatch: "evio owns its sockets and has no public way to watch an arbitrary fd",
	loop.CapDial:  "evio serves listeners only: it cannot dial out",
	loop.CapPacket: "evio answers a datagram only from inside its Data callback, to its sender, " +
		"and cannot send to an address (net.PacketConn.WriteTo)",
}

// Loop is the evio event loop. Create it with [New] (or loop.Open("evio"));
// see the package documentation for the design.
type Loop struct {
	wake   chan struct{} // one slot: a pending wake-up survives until the next wait
	stop   atomic.Bool   // Stop requested; Run consumes it
	closed atomic.Bool

	posts  *loop.PostQueue
	timers *loop.TimerHeap
	relay  *loop.SignalRelay
	sleep  *time.Timer // reused for timed waits

	mu       sync.Mutex
	servers  map[*server]struct{} // evio servers still running
	detached map[*stream]struct{} // half-closed streams evio let go
	watchers sync.WaitGroup       // goroutines polling detached streams
}

var (
	_ loop.Loop         = (*Loop)(nil)
	_ loop.Limited      = (*Loop)(nil)
	_ loop.StreamServer = (*Loop)(nil)
)

// New returns a new, not yet running loop.
func New() (*Loop, error) {
	l := &Loop{
		wake:     make(chan struct{}, 1),
		timers:   loop.NewTimerHeap(),
		sleep:    time.NewTimer(time.Hour),
		servers:  map[*server]struct{}{},
		detached: map[*stream]struct{}{},
	}
	l.sleep.Stop()
	l.posts = loop.NewPostQueue(l.wakeup)
	l.relay = loop.NewSignalRelay(l.Post)
	return l, nil
}

// wakeup makes the loop's current or next wait return. It never blocks,
// and a wake-up sent while the loop is busy is kept for its next wait: a
// Go channel cannot lose one, unlike evio's Wake (see the package doc).
func (l *Loop) wakeup() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Name returns "evio".
func (l *Loop) Name() string { return Name }

// Unsupported reports what evio cannot do (loop.Limited).
func (l *Loop) Unsupported() map[loop.Capability]string { return unsupported }

// Now returns time.Now().
func (l *Loop) Now() time.Time { return time.Now() }

// Post queues fn to run on the loop goroutine; safe from any goroutine. It
// returns loop.ErrClosed after Close and loop.ErrNilFunc for nil.
func (l *Loop) Post(fn func()) error { return l.posts.Post(fn) }

// Stop makes Run return after the current iteration; safe from any
// goroutine. A Stop that arrives while Run is not running makes the next
// Run return at once, so a Stop racing with the start of Run is never lost.
func (l *Loop) Stop() {
	l.stop.Store(true)
	l.wakeup()
}

// Watch is unsupported: evio cannot watch an fd it did not accept itself.
// The error wraps errors.ErrUnsupported.
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return nil, loop.Unsupported(l, loop.CapWatch)
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
		return nil, fmt.Errorf("evio: signal %v: %w", sig, loop.ErrClosed)
	}
	w, err := l.relay.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("evio: signal %v: %w", sig, err)
	}
	return w, nil
}

// Run runs the loop until Stop or Close. It returns an error wrapping
// loop.ErrClosed if the loop was already closed.
func (l *Loop) Run() error {
	if l.closed.Load() {
		return fmt.Errorf("evio: run: %w", loop.ErrClosed)
	}
	for !l.stop.Swap(false) && !l.closed.Load() {
		l.runOnce(true)
	}
	return nil
}

// RunOnce runs one iteration. If block, it waits until it has fired a
// timer or run a posted function (evio's events arrive as posts), or until
// Stop or Close; otherwise it only handles what is ready now.
func (l *Loop) RunOnce(block bool) error {
	if l.closed.Load() {
		return fmt.Errorf("evio: run once: %w", loop.ErrClosed)
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

// iterate fires due timers and runs posts (which carry evio's events), and
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
	return n + l.posts.Run()
}

// wait blocks until a wake-up or the next timer deadline.
func (l *Loop) wait() {
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

// Close stops every evio server the loop started (closing their
// connections and listeners), runs the functions posted before it —
// including the Closed events of those connections — stops the signal
// relay and waits until every goroutine the loop started has exited. A
// second Close returns nil. Close must not run while Run executes on
// another goroutine: Stop, wait for Run, then Close.
func (l *Loop) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	var errs []error
	l.mu.Lock()
	servers := make([]*server, 0, len(l.servers))
	for sv := range l.servers {
		servers = append(servers, sv)
	}
	l.mu.Unlock()
	for _, sv := range servers {
		if err := sv.shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	detached := make([]*stream, 0, len(l.detached))
	for st := range l.detached {
		detached = append(detached, st)
	}
	l.mu.Unlock()
	for _, st := range detached {
		_ = st.Close()
	}
	l.watchers.Wait()
	l.relay.Close()
	l.posts.Close()
	l.sleep.Stop()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("evio: close: %w", err)
	}
	return nil
}

func (l *Loop) rememberDetached(st *stream) {
	l.mu.Lock()
	l.detached[st] = struct{}{}
	l.mu.Unlock()
}

func (l *Loop) forgetDetached(st *stream) {
	l.mu.Lock()
	delete(l.detached, st)
	l.mu.Unlock()
}

// post queues fn for the loop goroutine on behalf of an evio goroutine. A
// closed loop runs nothing more, and nothing is left to deliver to.
func (l *Loop) post(fn func()) {
	_ = l.posts.Post(fn)
}
