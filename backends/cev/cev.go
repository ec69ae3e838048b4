//go:build cev

package cev

/*
#cgo LDFLAGS: -lev
#include "cev.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/evhub/evhub/loop"
)

// Name is the name the backend registers under.
const Name = "cev"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// ErrWatcherStopped is returned by Modify on a stopped watcher.
var ErrWatcherStopped = errors.New("cev: watcher stopped")

// ErrReentrant is returned by Run or RunOnce called from a callback of the
// same loop.
var ErrReentrant = errors.New("cev: Run or RunOnce called from a loop callback")

// chunk is how many ev_io structs are allocated at once. They never move,
// since libev keeps pointers to active watchers.
const chunk = 128

// spinPolls is how many non-blocking polls follow an iteration that ran
// callbacks before the loop blocks. Measured (conformance.BenchmarkLoop,
// 2 cores): Post round trip 6.1 µs with none, 2.7 µs with 2; readiness to
// woken goroutine 14.6 µs vs 10.2 µs; each extra poll costs ~0.4 µs CPU.
const spinPolls = 2

// Loop is a loop.Loop on a libev loop.
type Loop struct {
	c      *C.cev_t
	timers *loop.TimerHeap
	posts  *loop.PostQueue
	relay  *loop.SignalRelay

	// wakeMu orders ev_async_send (any goroutine) against ev_loop_destroy.
	wakeMu    sync.RWMutex
	destroyed bool
	// batch skips ev_async_send for a Post made while the loop dispatches
	// a batch (by a callback, or a goroutine it woke): the batch's end
	// makes the posts due. It also holds the yield before the loop
	// blocks in ev_run.
	batch loop.Batch

	stop atomic.Bool

	// Loop goroutine only.
	closing bool
	closed  bool
	running bool
	lost    bool // the last iteration dropped events: do not block
	spin    int  // non-blocking polls left before the next blocking one
	spinN   int  // polls after an iteration that ran callbacks (SetSpin)
	// the ev_async fired and the posts have not run yet
	postsDue bool

	slots  []*[chunk]slot // in blocks, as the ev_io they point into: no copying as they grow
	free   []int32
	chunks []unsafe.Pointer
	recs   []C.cev_rec
	perFD  []int32     // the loop's active Go watchers on each fd
	dirty  []C.int     // fds whose watchers changed since the last poll
	killed []C.cev_rec // watchers stopped because their fd was closed: report
}

// slot is one ev_io and the Go watcher that owns it, if any.
type slot struct {
	io  *C.ev_io
	w   *ioWatcher
	gen uint32
}

// New makes a libev loop. It fails if the process is out of fds or memory.
func New() (*Loop, error) {
	var e C.int
	c := C.cev_new(&e)
	if c == nil {
		return nil, fmt.Errorf("cev: ev_loop_new: %w", syscall.Errno(e))
	}
	l := &Loop{c: c, timers: loop.NewTimerHeap(), spinN: spinPolls}
	l.posts = loop.NewPostQueue(l.wake)
	l.relay = loop.NewSignalRelay(l.posts.Post)
	return l, nil
}

var _ loop.Spinner = (*Loop)(nil)

// SetSpin sets how many non-blocking polls follow an iteration that ran
// callbacks (default spinPolls; negative restores it). It implements
// [loop.Spinner]: a user whose callbacks seldom wake goroutines saves the
// polls' system calls.
func (l *Loop) SetSpin(n int) {
	if n < 0 {
		n = spinPolls
	}
	l.spinN = n
}

// Name returns "cev".
func (l *Loop) Name() string { return Name }

// Raw returns the loop's struct ev_loop pointer, for C code that adds its
// own watchers to the loop (see the package documentation for the rules),
// or nil after Close.
func (l *Loop) Raw() unsafe.Pointer {
	if l.closed {
		return nil
	}
	return unsafe.Pointer(l.c.loop)
}

// Now returns the current time; it carries a monotonic reading.
func (l *Loop) Now() time.Time { return time.Now() }

func (l *Loop) wake() {
	if l.batch.SkipWake() {
		return // the batch's end will see it
	}
	l.wakeMu.RLock()
	if !l.destroyed {
		C.cev_wake(l.c)
	}
	l.wakeMu.RUnlock()
}

// Post queues fn to run on the loop goroutine; safe from any goroutine.
func (l *Loop) Post(fn func()) error { return l.posts.Post(fn) }

// Stop makes the running (or the next) Run return after the current
// iteration; safe from any goroutine.
func (l *Loop) Stop() {
	l.stop.Store(true)
	l.wake()
}

// Signal calls cb on the loop goroutine each time sig arrives, through the
// os/signal relay (never ev_signal).
func (l *Loop) Signal(sig os.Signal, cb func(os.Signal)) (loop.Watcher, error) {
	if l.closed || l.closing {
		return nil, fmt.Errorf("cev: signal %v: %w", sig, loop.ErrClosed)
	}
	w, err := l.relay.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("cev: signal %v: %w", sig, err)
	}
	return w, nil
}

// Timer calls cb once after `after`, then every `repeat` if repeat > 0. A
// timer made after Close never fires.
func (l *Loop) Timer(after, repeat time.Duration, cb func()) loop.Timer {
	if cb == nil {
		cb = func() {}
	}
	return l.timers.Add(after, repeat, cb)
}

// Watch arms a level-triggered ev_io watcher for ev on fd.
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	switch {
	case l.closed || l.closing:
		return nil, fmt.Errorf("cev: watch fd %d: %w", fd, loop.ErrClosed)
	case ev == 0 || ev&^(loop.Readable|loop.Writable) != 0:
		return nil, fmt.Errorf("cev: watch fd %d: invalid events %#x", fd, uint8(ev))
	case cb == nil:
		return nil, fmt.Errorf("cev: watch fd %d: nil callback", fd)
	case fd < 0 || fd > math.MaxInt32:
		return nil, fmt.Errorf("cev: watch fd %d: %w", fd, os.NewSyscallError("fcntl", syscall.EBADF))
	}
	i, err := l.allocSlot()
	if err != nil {
		return nil, fmt.Errorf("cev: watch fd %d: %w", fd, err)
	}
	s := l.slotAt(i)
	if e := C.cev_io_start(l.c, s.io, C.int(fd), evMask(ev), C.uint64_t(s.handle(i))); e != 0 {
		l.free = append(l.free, i)
		if e == C.EINVAL {
			return nil, fmt.Errorf("cev: watch fd %d: the loop's own epoll fd: %w", fd, syscall.EINVAL)
		}
		return nil, fmt.Errorf("cev: watch fd %d: %w", fd, os.NewSyscallError("fcntl", syscall.Errno(e)))
	}
	w := &ioWatcher{l: l, slot: i, fd: fd, events: ev, cb: cb}
	s.w = w
	if fd >= len(l.perFD) {
		l.perFD = append(l.perFD, make([]int32, fd+1-len(l.perFD))...)
	}
	l.perFD[fd]++
	l.dirty = append(l.dirty, C.int(fd))
	return w, nil
}

func (s *slot) handle(i int32) uint64 { return uint64(s.gen)<<32 | uint64(uint32(i)) }

// slotAt is slot i.
func (l *Loop) slotAt(i int32) *slot { return &l.slots[i/chunk][i%chunk] }

// allSlots yields every slot.
func (l *Loop) allSlots() iter.Seq2[int32, *slot] {
	return func(yield func(int32, *slot) bool) {
		for b, blk := range l.slots {
			for i := range blk {
				if !yield(int32(b*chunk+i), &blk[i]) {
					return
				}
			}
		}
	}
}

func (l *Loop) allocSlot() (int32, error) {
	if n := len(l.free); n > 0 {
		i := l.free[n-1]
		l.free = l.free[:n-1]
		return i, nil
	}
	p := C.calloc(chunk, C.sizeof_ev_io)
	if p == nil {
		return 0, syscall.ENOMEM
	}
	l.chunks = append(l.chunks, p)
	base := int32(len(l.slots) * chunk)
	blk := new([chunk]slot)
	for i := range blk {
		blk[i] = slot{io: (*C.ev_io)(unsafe.Add(p, i*C.sizeof_ev_io)), gen: 1}
	}
	l.slots = append(l.slots, blk)
	for i := base + chunk - 1; i > base; i-- {
		l.free = append(l.free, i)
	}
	return base, nil
}

func evMask(ev loop.Events) C.int {
	var m C.int
	if ev&loop.Readable != 0 {
		m |= C.EV_READ
	}
	if ev&loop.Writable != 0 {
		m |= C.EV_WRITE
	}
	return m
}

// Run runs the loop until Stop or Close.
func (l *Loop) Run() error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	for !l.closed {
		if l.stop.Load() && l.stop.CompareAndSwap(true, false) {
			return nil
		}
		l.iterate(true)
	}
	return nil
}

// RunOnce runs one iteration. If block, it waits until at least one
// callback ran (a Go one or a C watcher on Raw), or Stop was called.
func (l *Loop) RunOnce(block bool) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.leave()
	for {
		if l.iterate(block) || !block || l.closed {
			return nil
		}
		if l.stop.Load() && l.stop.CompareAndSwap(true, false) {
			return nil
		}
	}
}

func (l *Loop) enter() error {
	if l.closed || l.closing {
		return loop.ErrClosed
	}
	if l.running {
		return ErrReentrant
	}
	l.running = true
	return nil
}

func (l *Loop) leave() { l.running = false }

// iterate polls once and dispatches what it collected; it reports whether
// anything ran.
func (l *Loop) iterate(block bool) bool {
	flags := C.int(C.EVRUN_NOWAIT)
	timeout := -1.0
	if block && !l.lost {
		// Let the goroutines the last callbacks readied run before this
		// thread sleeps in epoll_wait with them in its run-next slot.
		l.batch.Yield()
		flags = C.EVRUN_ONCE
		if l.postsDue {
			flags = C.EVRUN_NOWAIT
		} else if l.spin > 0 {
			// Just after a busy iteration, poll without blocking (yielding
			// before each poll): the goroutines just readied often Post or
			// write at once, and catching that here saves the thread a
			// sleep and a wake-up in the kernel.
			l.spin--
			l.batch.Ran() // yield before each of these polls too
			flags = C.EVRUN_NOWAIT
		} else if l.timers.Len() == 0 {
			flags = C.EVRUN_ONCE // no timer: no clock to read
		} else if d, ok := l.timers.Timeout(time.Now()); ok {
			if d <= 0 {
				flags = C.EVRUN_NOWAIT
			} else {
				timeout = d.Seconds()
			}
		}
	}
	c := l.c
	for {
		var fds *C.int
		if len(l.dirty) > 0 {
			fds = &l.dirty[0]
		}
		nbad := int(C.cev_run(c, flags, C.double(timeout), fds, C.int(len(l.dirty))))
		if nbad == 0 {
			break
		}
		l.killBadFDs(l.dirty[:nbad])
		l.dirty = l.dirty[:0]
		flags, timeout = C.EVRUN_NOWAIT, -1
	}
	l.dirty = l.dirty[:0]

	// Read everything from C memory now: a callback may Close the loop.
	n := int(c.n)
	if c.async_fired != 0 {
		// Kept until the posts have run: the wake-up is consumed, and a
		// panicking callback before them must not leave them unrun.
		l.postsDue = true
	}
	timerFired := c.timer_fired != 0
	foreign := int(c.invoked) - n - int(c.async_fired) - int(c.timer_fired)
	l.lost = c.lost != 0
	l.recs = append(l.recs[:0], unsafe.Slice(c.recs, n)...)
	if len(l.killed) > 0 {
		l.recs = append(l.recs, l.killed...)
		l.killed = l.killed[:0]
	}

	ran := 0
	l.batch.Begin()
	defer l.endBatch()
	for _, r := range l.recs {
		if l.closed {
			break
		}
		i := uint32(r.h)
		if int(i) >= len(l.slots)*chunk {
			continue
		}
		s := l.slotAt(int32(i))
		// A watcher stopped earlier in this batch has a new generation
		// (and its slot maybe a new watcher): drop its event.
		if s.w == nil || s.gen != uint32(r.h>>32) {
			continue
		}
		w := s.w
		ev := w.events
		if r.revents&C.EV_ERROR == 0 {
			ev &= fromMask(r.revents)
		} else {
			w.dead = true // libev (or killBadFDs) stopped its ev_io
		}
		if ev == 0 {
			continue
		}
		ran++
		w.cb(ev)
	}
	if !l.closed && (timerFired || l.timers.Len() > 0) {
		ran += l.timers.RunDue(time.Now())
	}
	// Posts the callbacks made run now, before the next poll: a task a
	// callback woke then reads its fd before libev, level-triggered,
	// reports it again (which would find nobody waiting, disarm the fd
	// and have the task's next wait arm it again: two epoll_ctl per
	// round trip).
	if (l.postsDue || l.batch.Skipped()) && !l.closed {
		l.postsDue = false
		ran += l.posts.Run()
	}
	if ran > 0 {
		l.batch.Ran()
		l.spin = l.spinN
	}
	return ran > 0 || foreign > 0
}

// endBatch ends a batch: posts made during it, whose wake-up was skipped,
// are due now (the next iteration runs them without blocking). Deferred,
// so that a panicking callback leaves no post stranded.
func (l *Loop) endBatch() {
	if l.batch.End() {
		l.postsDue = true
	}
}

// killBadFDs stops the ev_io of every Go watcher on the closed fds before
// libev's epoll_ctl would abort on them, and queues an error event for
// each: the callback gets its armed events, so that its next syscall
// reports EBADF, as libev itself does for fds it finds bad.
func (l *Loop) killBadFDs(fds []C.int) {
	for _, fd := range fds {
		if int(fd) >= len(l.perFD) || l.perFD[fd] == 0 {
			continue
		}
		for i, s := range l.allSlots() {
			if w := s.w; w != nil && w.fd == int(fd) && !w.dead {
				C.cev_io_stop(l.c, s.io)
				w.dead = true
				if w.events != 0 {
					l.killed = append(l.killed, C.cev_rec{h: C.uint64_t(s.handle(i)), revents: C.EV_ERROR})
				}
			}
		}
	}
}

func fromMask(m C.int32_t) loop.Events {
	var ev loop.Events
	if m&C.EV_READ != 0 {
		ev |= loop.Readable
	}
	if m&C.EV_WRITE != 0 {
		ev |= loop.Writable
	}
	return ev
}

// Close stops the loop and releases it: it runs the functions already
// posted, stops every watcher and signal relay, and destroys the libev
// loop (its epoll fd and eventfd). It may be called from a callback.
// Close is idempotent.
func (l *Loop) Close() error {
	if l.closed || l.closing {
		return nil
	}
	l.closing = true
	l.relay.Close()
	l.posts.Close() // runs what was posted before; later Posts fail
	l.closed = true
	for _, s := range l.allSlots() {
		if w := s.w; w != nil {
			w.stopped = true
			w.events = 0
			s.w = nil
		}
	}
	l.wakeMu.Lock()
	l.destroyed = true
	l.wakeMu.Unlock()
	C.cev_destroy(l.c)
	l.c = nil
	for _, p := range l.chunks {
		C.free(p)
	}
	l.chunks, l.slots, l.free, l.recs = nil, nil, nil, nil
	l.perFD, l.dirty, l.killed = nil, nil, nil
	l.timers = loop.NewTimerHeap() // pending timers never fire; drop them
	return nil
}

// ioWatcher is an ev_io owned by a Go callback.
type ioWatcher struct {
	l       *Loop
	slot    int32
	fd      int
	events  loop.Events
	cb      func(loop.Events)
	stopped bool
	dead    bool // its ev_io was stopped for a closed fd; Modify restarts it
}

// Stop stops the ev_io. Once it returns the callback never runs again, even
// for an event libev already collected in this iteration.
func (w *ioWatcher) Stop() error {
	if w.stopped {
		return nil
	}
	w.stopped = true
	w.events = 0
	l := w.l
	s := l.slotAt(w.slot)
	C.cev_io_stop(l.c, s.io)
	s.w = nil
	if s.gen++; s.gen == 0 {
		s.gen = 1
	}
	l.free = append(l.free, w.slot)
	if l.perFD[w.fd]--; l.perFD[w.fd] > 0 {
		// The fd's event mask may change for the watchers that remain.
		l.dirty = append(l.dirty, C.int(w.fd))
	}
	return nil
}

// Modify changes the armed events; 0 pauses the watcher.
func (w *ioWatcher) Modify(ev loop.Events) error {
	switch {
	case ev&^(loop.Readable|loop.Writable) != 0:
		return fmt.Errorf("cev: modify fd %d: invalid events %#x", w.fd, uint8(ev))
	case w.stopped:
		return fmt.Errorf("cev: modify fd %d: %w", w.fd, ErrWatcherStopped)
	case ev == w.events && !w.dead:
		return nil
	}
	l := w.l
	C.cev_io_modify(l.c, l.slotAt(w.slot).io, evMask(ev))
	w.events = ev
	w.dead = false
	if ev != 0 || l.perFD[w.fd] > 1 {
		// The fd's mask stays non-zero, so libev will call epoll_ctl.
		l.dirty = append(l.dirty, C.int(w.fd))
	}
	return nil
}

// Events reports the armed events (none once stopped).
func (w *ioWatcher) Events() loop.Events { return w.events }
