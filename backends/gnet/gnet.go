//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"github.com/panjf2000/gnet/v2/pkg/queue"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// errShutdown makes Poller.Polling return; it is gnet's own sentinel
// because Polling recognises no other.
var errShutdown = gerrors.ErrEngineShutdown

// Loop is a loop.Loop on gnet's poller. Create it with [New] or
// loop.Open("gnet"). It also implements [loop.EdgeWatcher].
type Loop struct {
	// pmu guards outer against a swap while another goroutine Triggers
	// it: a closed poller's eventfd number may already belong to someone
	// else.
	pmu sync.RWMutex
	// outer is the poller that runs: Polling, Trigger, the timerfd and the
	// inner poller's fd. See poll for when it is replaced.
	outer *netpoll.Poller
	// wakeFD is outer's wake-up eventfd (-1 where there is none, or on a
	// gnet without the field); see rewake.
	wakeFD int
	// inner holds the watched fds (Add*/Mod*/Delete) and is never Polled:
	// its fd is registered with outer, and a readiness of it is one batch,
	// collected with a non-blocking wait. Registrations, edge state
	// included, thus outlive the replacement of outer.
	inner   *netpoll.Poller
	innerFD int
	raw     rawEvents
	ready   []readyEvent

	posts  *loop.PostQueue
	sigs   *loop.SignalRelay
	timers *loop.TimerHeap
	tsrc   timerSource
	tfd    int // tsrc.fd(), or -1

	// Trigger tasks and the Polling callback, made once so that neither a
	// Trigger nor a Polling call allocates a closure.
	drainFn func(any) error
	stopFn  func(any) error
	onceFn  func(any) error
	pollCb  netpoll.PollEventHandler

	stopReq atomic.Bool
	// bw brackets two kinds of batch, during which a Post's wake-up is
	// skipped: an I/O batch's callbacks (outside RunOnce), whose end
	// drains the posts (dispatch), so that a callback that posts — a task
	// woken by readiness — costs no eventfd write, read and extra poll;
	// and the post drain itself, whose end defers what was posted during
	// it to the next batch, so that a function that keeps re-posting
	// itself cannot starve I/O (gnet's chores drain the task queue until
	// it is empty). It also holds the yield after a batch.
	bw loop.Batch

	// Loop goroutine only from here on.
	fds        []*fdRec // by fd number
	closed     bool
	running    bool
	inPoll     bool
	once       bool // RunOnce in progress
	onceDone   bool // this RunOnce has had its iteration: end at the next chores
	onceTrig   bool // this RunOnce has Triggered its end
	onceIO     bool // this RunOnce has dispatched its I/O batch
	onceTimers bool // this RunOnce has run its timers
	batch      uint64
	yield      bool // Gosched after readying (loop.Batch); off only in benchmarks
	reuse      bool // keep outer after Polling returns (rewake); off by default, see doc.go
	werr       error
}

// readyEvent is one fd's readiness in a batch.
type readyEvent struct {
	fd int
	ev loop.Events
}

// fdRec is the single poller registration of one fd, shared by all of its
// watchers.
type fdRec struct {
	pa     netpoll.PollAttachment
	edge   bool
	ws     []*ioWatcher // never modified in place: dispatch iterates a snapshot
	kernel loop.Events  // registered with the inner poller
	// born is the batch during which the record was made: that batch was
	// collected before it existed, so an event for its fd number there
	// belongs to a file that had the number before.
	born uint64
}

type ioWatcher struct {
	l       *Loop
	rec     *fdRec
	ev      loop.Events
	cb      func(loop.Events)
	stopped bool
}

// timerSource wakes the poller when the earliest timer is due.
type timerSource interface {
	// fd is the fd registered with the outer poller, or -1.
	fd() int
	// register adds the source to a (fresh) outer poller.
	register(p *netpoll.Poller) error
	// arm makes the source fire no later than now+d.
	arm(now time.Time, d time.Duration)
	// kick makes the source fire at once.
	kick()
	// fired acknowledges a firing.
	fired()
	close() error
}

// New opens a gnet loop: two gnet pollers (each an epoll or kqueue fd plus
// a wake-up eventfd or pipe) and, on Linux, a timerfd.
func New() (l *Loop, err error) {
	l = &Loop{timers: loop.NewTimerHeap(), yield: true, reuse: false, tfd: -1, innerFD: -1, wakeFD: -1}
	defer func() {
		if err != nil {
			_ = l.release()
			l = nil
		}
	}()
	if l.inner, err = netpoll.OpenPoller(); err != nil {
		return nil, fmt.Errorf("gnet: open poller: %w", err)
	}
	if l.innerFD, err = pollerFD(l.inner); err != nil {
		return nil, err
	}
	if l.tsrc, err = newTimerSource(l); err != nil {
		return nil, fmt.Errorf("gnet: timer source: %w", err)
	}
	l.tfd = l.tsrc.fd()
	if l.outer, err = l.openOuter(); err != nil {
		return nil, err
	}
	l.wakeFD = wakeFD(l.outer)
	l.raw = newRawEvents(256)
	l.ready = make([]readyEvent, 0, 256)
	l.posts = loop.NewPostQueue(l.wake)
	l.sigs = loop.NewSignalRelay(l.Post)
	l.drainFn = l.drainTask
	l.stopFn = l.stopTask
	l.onceFn = l.onceTask
	l.pollCb = l.onEvent
	return l, nil
}

// pollerFD returns the epoll or kqueue fd of p. gnet does not export it;
// it is read (never written) by reflection, and a gnet without the field
// is reported, not guessed at.
func pollerFD(p *netpoll.Poller) (int, error) {
	if fd := intField(p, "fd"); fd >= 0 {
		return fd, nil
	}
	return -1, fmt.Errorf("gnet: netpoll.Poller of this gnet version has no fd field: %w", errors.ErrUnsupported)
}

// wakeFD returns the eventfd through which p's Trigger wakes Polling
// (Linux), or -1.
func wakeFD(p *netpoll.Poller) int { return intField(p, "efd") }

// intField reads the unexported int field name of p, or -1.
func intField(p *netpoll.Poller, name string) int {
	v := reflect.ValueOf(p).Elem().FieldByName(name)
	if !v.IsValid() || v.Kind() != reflect.Int {
		return -1
	}
	return int(v.Int())
}

// openOuter opens an outer poller with the inner poller and the timer
// source registered, both level-triggered.
func (l *Loop) openOuter() (*netpoll.Poller, error) {
	p, err := netpoll.OpenPoller()
	if err != nil {
		return nil, fmt.Errorf("gnet: open poller: %w", err)
	}
	if err = p.AddRead(&netpoll.PollAttachment{FD: l.innerFD}, false); err == nil {
		err = l.tsrc.register(p)
	}
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("gnet: register with a new poller: %w", err)
	}
	return p, nil
}

// Name returns "gnet".
func (l *Loop) Name() string { return Name }

// Now returns the current time.
func (l *Loop) Now() time.Time { return time.Now() }

// Unsupported reports no missing capability: gnet's poller watches any
// pollable fd.
func (l *Loop) Unsupported() map[loop.Capability]string { return nil }

// ---- watchers ----

// Watch arms a level-triggered watcher for ev on fd. Several watchers may
// share an fd; they must all be level-triggered.
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return l.watch("watch", fd, ev, cb, false)
}

// WatchEdge arms an edge-triggered watcher for ev on fd: cb runs once each
// time fd becomes ready in a direction of ev. Several watchers may share
// an fd; they must all be edge-triggered. It implements [loop.EdgeWatcher].
func (l *Loop) WatchEdge(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return l.watch("watch edge", fd, ev, cb, true)
}

func (l *Loop) watch(op string, fd int, ev loop.Events, cb func(loop.Events), edge bool) (loop.IOWatcher, error) {
	switch {
	case l.closed:
		return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, loop.ErrClosed)
	case fd < 0:
		return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, os.NewSyscallError(ctlName, unix.EBADF))
	case ev == 0 || ev&^(loop.Readable|loop.Writable) != 0:
		return nil, fmt.Errorf("gnet: %s fd %d: events %#x: %w", op, fd, uint8(ev), os.ErrInvalid)
	case cb == nil:
		return nil, fmt.Errorf("gnet: %s fd %d: nil callback: %w", op, fd, os.ErrInvalid)
	}
	w := &ioWatcher{l: l, ev: ev, cb: cb}
	var rec *fdRec
	if fd < len(l.fds) {
		rec = l.fds[fd]
	}
	if rec == nil {
		rec = &fdRec{pa: netpoll.PollAttachment{FD: fd}, edge: edge, born: l.batch}
		// Registering first: an invalid fd fails here, before the table
		// grows for it.
		if err := applyInterest(l, rec, ev); err != nil {
			return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, err)
		}
		if fd >= len(l.fds) {
			fds := make([]*fdRec, max(2*len(l.fds), fd+1, 64))
			copy(fds, l.fds)
			l.fds = fds
		}
		rec.ws = []*ioWatcher{w}
		l.fds[fd] = rec
	} else {
		if rec.edge != edge {
			mode := "level"
			if rec.edge {
				mode = "edge"
			}
			return nil, fmt.Errorf("gnet: %s fd %d: fd already has %s-triggered watchers: %w", op, fd, mode, ErrMixedTriggers)
		}
		if err := applyInterest(l, rec, rec.want()|ev); err != nil {
			return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, err)
		}
		ws := make([]*ioWatcher, len(rec.ws), len(rec.ws)+1)
		copy(ws, rec.ws)
		rec.ws = append(ws, w)
	}
	w.rec = rec
	return w, nil
}

// want is the union of the events of rec's watchers.
func (rec *fdRec) want() loop.Events {
	var ev loop.Events
	for _, w := range rec.ws {
		ev |= w.ev
	}
	return ev
}

// Events reports the armed events (0 once stopped).
func (w *ioWatcher) Events() loop.Events {
	if w.stopped {
		return 0
	}
	return w.ev
}

// Modify changes the armed events; 0 pauses the watcher.
func (w *ioWatcher) Modify(ev loop.Events) error {
	fd := w.rec.pa.FD
	switch {
	case w.l.closed:
		return fmt.Errorf("gnet: modify fd %d: %w", fd, loop.ErrClosed)
	case w.stopped:
		return fmt.Errorf("gnet: modify fd %d: watcher stopped: %w", fd, os.ErrClosed)
	case ev&^(loop.Readable|loop.Writable) != 0:
		return fmt.Errorf("gnet: modify fd %d: events %#x: %w", fd, uint8(ev), os.ErrInvalid)
	case w.ev == ev:
		return nil
	}
	old := w.ev
	w.ev = ev
	if err := applyInterest(w.l, w.rec, w.rec.want()); err != nil {
		w.ev = old
		return fmt.Errorf("gnet: modify fd %d: %w", fd, err)
	}
	return nil
}

// Stop cancels the watcher: its callback never runs again, even for an
// event already collected in the current batch. Stop is idempotent.
func (w *ioWatcher) Stop() error {
	if w.stopped {
		return nil
	}
	w.stopped = true
	l, rec := w.l, w.rec
	if l.closed {
		return nil
	}
	ws := make([]*ioWatcher, 0, len(rec.ws))
	for _, o := range rec.ws {
		if o != w {
			ws = append(ws, o)
		}
	}
	rec.ws = ws
	fd := rec.pa.FD
	err := applyInterest(l, rec, rec.want())
	if len(ws) == 0 {
		l.fds[fd] = nil
		if err != nil && (errors.Is(err, unix.EBADF) || errors.Is(err, unix.ENOENT)) {
			// The fd was closed before its watcher was stopped; the
			// kernel dropped the registration with it.
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("gnet: stop fd %d: %w", fd, err)
	}
	return nil
}

// ---- timers ----

// deadTimer is the Timer of a closed loop or a nil callback: it never
// fires.
type deadTimer struct{}

func (deadTimer) Stop() bool                    { return false }
func (deadTimer) Reset(_, _ time.Duration) bool { return false }

// Timer calls cb once after `after`, then every `repeat` if repeat > 0. On
// a closed loop, or with a nil cb, the timer never fires.
//
// The timer is the shared heap's own, unwrapped (one allocation per
// timer). A Reset to an earlier deadline is seen by the rearm that follows
// every batch of callbacks, and by Run and RunOnce when they start, which
// covers every place a Reset can be called from.
func (l *Loop) Timer(after, repeat time.Duration, cb func()) loop.Timer {
	if l.closed || cb == nil {
		return deadTimer{}
	}
	t := l.timers.Add(after, repeat, cb)
	l.rearm()
	return t
}

// rearm makes the timer source fire no later than the earliest deadline.
// It only ever moves the armed deadline earlier: a source that fires
// early finds nothing due and is re-armed then, which is cheaper than
// re-arming on every Stop. Without a syscall it costs a clock read.
func (l *Loop) rearm() {
	now := time.Now()
	if d, ok := l.timers.Timeout(now); ok {
		l.tsrc.arm(now, d)
	}
}

// runTimers fires what is due and re-arms for the rest; it reports
// whether a callback ran.
func (l *Loop) runTimers() bool {
	l.tsrc.fired()
	n := l.timers.RunDue(time.Now())
	if !l.closed {
		l.rearm()
	}
	return n > 0
}

// ---- signals and posts ----

// Signal calls cb on the loop goroutine each time sig arrives (through
// os/signal; the loop installs no signal handler of its own).
func (l *Loop) Signal(sig os.Signal, cb func(os.Signal)) (loop.Watcher, error) {
	if l.closed {
		return nil, fmt.Errorf("gnet: signal %v: %w", sig, loop.ErrClosed)
	}
	w, err := l.sigs.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("gnet: signal: %w", err)
	}
	return w, nil
}

// Post queues fn to run on the loop goroutine. It is safe from any
// goroutine and never blocks on the loop.
func (l *Loop) Post(fn func()) error { return l.posts.Post(fn) }

// wake is the PostQueue's wake-up: Trigger the drain on the current outer
// poller or, while a drain or a batch of callbacks is running, leave it to
// that drain or to the drain that ends the batch.
func (l *Loop) wake() {
	if l.bw.SkipWake() {
		return // the drain, or the batch's end, sees it
	}
	l.trigger(l.drainFn)
}

func (l *Loop) trigger(fn func(any) error) {
	l.pmu.RLock()
	if p := l.outer; p != nil {
		// Trigger fails only if the eventfd does, which pmu rules out.
		_ = p.Trigger(queue.HighPriority, fn, nil)
	}
	l.pmu.RUnlock()
}

// drainTask runs on the loop goroutine in Polling's chores, after the
// batch's I/O.
func (l *Loop) drainTask(any) error {
	if l.drainPosts() > 0 {
		l.onceDone = true
		l.afterCallbacks()
	}
	return l.endCheck()
}

// drainPosts runs the posted functions and reports how many ran.
func (l *Loop) drainPosts() int {
	l.bw.Begin()
	n := l.posts.Run()
	if l.bw.End() && l.posts.Pending() {
		// Posted while draining: run them in the next batch, after its
		// I/O (the timer source's callback Triggers the drain).
		l.tsrc.kick()
	}
	return n
}

// afterCallbacks runs after a batch of callbacks: they may have reset a
// timer earlier, and readied goroutines into this P's runnext slot, which
// should run before Polling blocks again (loop.Batch's yield).
func (l *Loop) afterCallbacks() {
	if l.closed {
		return
	}
	l.rearm()
	if l.yield {
		l.bw.Ran()
		l.bw.Yield()
	}
}

func (l *Loop) stopTask(any) error { return l.endCheck() }

func (l *Loop) onceTask(any) error { return l.endCheck() }

// endCheck makes Polling return when Stop was requested or RunOnce has
// had its iteration. It runs in Polling's chores only, after every
// callback of the batch: nothing collected is left undispatched. A task
// left over from an earlier RunOnce does not end one that has done
// nothing yet.
func (l *Loop) endCheck() error {
	if (l.once && l.onceDone) || l.stopReq.Load() {
		return errShutdown
	}
	return nil
}

// ---- dispatch ----

// onEvent is the outer Polling's callback.
func (l *Loop) onEvent(fd int, _ netpoll.IOEvent, _ netpoll.IOFlags) error {
	switch fd {
	case l.innerFD:
		if l.once {
			if l.onceIO {
				return nil // one batch per RunOnce; the rest stays queued in inner
			}
			l.onceIO = true
			l.endOnce()
		}
		l.dispatch()
	case l.tfd:
		if l.once {
			if l.onceTimers {
				return nil
			}
			l.onceTimers = true
			l.endOnce()
		}
		if l.runTimers() {
			l.afterCallbacks()
		}
		if l.posts.Pending() {
			// A drain deferred by drainTask: Trigger it now, so that it
			// runs after this batch's I/O.
			l.trigger(l.drainFn)
		}
	}
	return nil
}

// dispatch collects one batch from the inner poller and runs its
// callbacks. It allocates nothing.
func (l *Loop) dispatch() {
	l.ready = waitInner(l.innerFD, l.raw, l.ready[:0])
	l.batch++
	ran := false
	// Outside RunOnce (whose one batch and one drain are counted), what
	// the callbacks post is drained at the batch's end, with no Trigger.
	inline := !l.once
	if inline {
		l.bw.Begin()
	}
	for i := range l.ready {
		r := &l.ready[i]
		if r.fd >= len(l.fds) {
			continue
		}
		rec := l.fds[r.fd]
		if rec == nil || rec.born == l.batch {
			continue // stopped, or a stale event of a previous file
		}
		for _, w := range rec.ws {
			if w.stopped {
				continue // stopped earlier in this batch
			}
			if got := r.ev & w.ev; got != 0 {
				ran = true
				w.cb(got)
			}
		}
	}
	if inline && l.bw.End() && l.drainPosts() > 0 {
		ran = true
	}
	if ran {
		l.afterCallbacks()
	}
}

// endOnce asks Polling to return after the current batch of a RunOnce.
func (l *Loop) endOnce() {
	l.onceDone = true
	if !l.onceTrig {
		l.onceTrig = true
		l.trigger(l.onceFn)
	}
}

// ---- running ----

// Run runs the loop until Stop or Close. A Stop that came while the loop
// was not running makes Run return after one iteration.
func (l *Loop) Run() error {
	if err := l.enter("run"); err != nil {
		return err
	}
	defer l.leave()
	l.rearm()
	if l.stopReq.Load() {
		l.trigger(l.stopFn)
	}
	for {
		if err := l.poll(); err != nil {
			return err
		}
		if l.closed || l.stopReq.Swap(false) {
			return nil
		}
	}
}

// RunOnce runs one iteration: one batch of I/O, the due timers and the
// posted functions. With block it first waits for one of them. It may
// return having run nothing (a spurious wake-up). A pending Stop is
// consumed by it.
func (l *Loop) RunOnce(block bool) error {
	if err := l.enter("run once"); err != nil {
		return err
	}
	defer l.leave()
	l.once, l.onceDone, l.onceTrig, l.onceIO, l.onceTimers = true, false, false, false, false
	l.rearm()
	if !block {
		l.endOnce()
	}
	err := l.poll()
	l.stopReq.Store(false)
	return err
}

func (l *Loop) enter(op string) error {
	switch {
	case l.closed:
		return fmt.Errorf("gnet: %s: %w", op, loop.ErrClosed)
	case l.running:
		return fmt.Errorf("gnet: %s: loop is already running", op)
	case l.outer == nil:
		return fmt.Errorf("gnet: %s: loop has no poller: %w", op, l.werr)
	}
	l.running = true
	return nil
}

func (l *Loop) leave() {
	l.running = false
	l.once = false
	if l.inPoll {
		// A callback panicked through Polling: replace the poller before
		// the panic goes on.
		l.inPoll = false
		l.bw.End() // what was posted is drained after the swap
		if l.closed {
			_ = l.release()
		} else {
			_ = l.swap()
		}
	}
}

// poll runs Polling until a task ends it.
//
// Polling returns from inside its chores, before it clears its wake-up
// flag: a Trigger on that poller would then queue its task without
// writing the eventfd, and nothing would wake Polling for it (see "Ending
// Polling" in the package doc). Where the eventfd
// is known (Linux), rewake writes it once, which is exactly the write
// Trigger skipped: the next Polling finds it, runs whatever was queued and
// clears the flag, and the poller is reused. Elsewhere, or after a panic
// or a poller error, swap replaces the outer poller. Both are measured in
// BenchmarkRunOnce.
func (l *Loop) poll() error {
	l.inPoll = true
	err := l.outer.Polling(l.pollCb)
	l.inPoll = false
	if l.closed { // by a callback
		l.stopReq.Store(false)
		return l.release()
	}
	if err != nil && !errors.Is(err, errShutdown) {
		_ = l.swap()
		return fmt.Errorf("gnet: poll: %w", err)
	}
	if l.reuse && l.wakeFD >= 0 && l.rewake() == nil {
		return nil
	}
	return l.swap()
}

// rewake makes the next Polling of outer run its chores.
func (l *Loop) rewake() error {
	var one [8]byte // eventfd adds a host-endian uint64; 1 is all it takes
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(l.wakeFD, one[:])
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The counter is full, so the eventfd is readable anyway.
			return nil
		}
		return err
	}
}

// swap replaces the outer poller with a fresh one. Only the inner
// poller's fd and the timer source are registered on it; the watched fds
// live in the inner poller, untouched, edge state included.
func (l *Loop) swap() error {
	p, err := l.openOuter()
	l.pmu.Lock()
	old := l.outer
	l.outer = p // nil on error: the loop is broken, wake-ups go nowhere
	l.wakeFD = -1
	if p != nil {
		l.wakeFD = wakeFD(p)
	}
	l.pmu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if err != nil {
		l.werr = err
		return err
	}
	// A wake-up or Stop Triggered on the old poller after its Polling
	// returned went with it.
	if l.posts.Pending() {
		l.trigger(l.drainFn)
	}
	if l.stopReq.Load() {
		l.trigger(l.stopFn)
	}
	return nil
}

// Stop makes Run return after the current iteration; safe from any
// goroutine. A Stop while the loop is not running makes the next Run (or
// RunOnce) return after one iteration.
func (l *Loop) Stop() {
	if !l.stopReq.Swap(true) {
		l.trigger(l.stopFn)
	}
}

// Close stops the loop and releases both pollers, the timer source and the
// signal relay's goroutines; watched fds stay open (they are the caller's).
// Functions posted before Close run first. Called from a callback, Close
// makes Run return (nil) and the pollers are released as it does; it must
// not be called while Run executes on another goroutine. Closing again is
// a no-op.
func (l *Loop) Close() error {
	if l.closed {
		return nil
	}
	// Closed first: functions still queued run below and find the loop
	// closed for new registrations.
	l.closed = true
	l.sigs.Close()
	l.posts.Close()
	for _, rec := range l.fds {
		if rec != nil {
			for _, w := range rec.ws {
				w.stopped = true
			}
		}
	}
	l.fds = nil
	if l.running {
		// From a callback: Polling is on the stack and its poller must
		// stay open until it returns; poll releases everything then.
		l.stopReq.Store(true)
		l.trigger(l.stopFn)
		return nil
	}
	return l.release()
}

// release closes the pollers and the timer source.
func (l *Loop) release() error {
	var errs []error
	l.pmu.Lock()
	outer := l.outer
	l.outer = nil
	l.pmu.Unlock()
	if outer != nil {
		if err := outer.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gnet: close poller: %w", err))
		}
	}
	if l.inner != nil {
		if err := l.inner.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gnet: close poller: %w", err))
		}
		l.inner = nil
	}
	if l.tsrc != nil {
		if err := l.tsrc.close(); err != nil {
			errs = append(errs, fmt.Errorf("gnet: close timer source: %w", err))
		}
	}
	return errors.Join(errs...)
}

var (
	_ loop.Loop        = (*Loop)(nil)
	_ loop.EdgeWatcher = (*Loop)(nil)
	_ loop.Limited     = (*Loop)(nil)
)
