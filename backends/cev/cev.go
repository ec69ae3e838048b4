//go:build cev

package cev

/*
#cgo LDFLAGS: -lev
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <ev.h>

// One readiness event of one of the loop's ev_io watchers, recorded during
// ev_run and dispatched in Go after it returns.
typedef struct {
	uint64_t h;       // the watcher's handle: generation << 32 | slot
	int32_t revents;
	int32_t pad;
} cev_rec;

// The C side of one loop. ev_userdata points here.
typedef struct {
	struct ev_loop *loop;
	ev_async async;   // Post and Stop wake-ups
	ev_timer timer;   // armed for the earliest deadline of the Go timer heap
	cev_rec *recs;    // events recorded by the last cev_run
	int32_t n, cap;
	int32_t async_fired, timer_fired;
	int32_t lost;     // recs could not grow; events were dropped (level-triggered: they come back)
	uint32_t invoked; // watchers libev invoked in the last cev_run, ours and foreign C ones
	int epfd;         // libev's epoll fd, or -1 if unknown
} cev_t;

static void cev_record(cev_t *c, uint64_t h, int revents) {
	if (c->n == c->cap) {
		int32_t ncap = c->cap * 2;
		cev_rec *r = realloc(c->recs, (size_t)ncap * sizeof *r);
		if (!r) {
			c->lost = 1;
			return;
		}
		c->recs = r;
		c->cap = ncap;
	}
	c->recs[c->n].h = h;
	c->recs[c->n].revents = revents;
	c->n++;
}

// The callbacks of the loop's own watchers only record: no Go code runs
// inside ev_run.
static void cev_io_cb(struct ev_loop *L, ev_io *w, int revents) {
	cev_record((cev_t *)ev_userdata(L), (uint64_t)(uintptr_t)w->data, revents);
}

static void cev_async_cb(struct ev_loop *L, ev_async *w, int revents) {
	((cev_t *)ev_userdata(L))->async_fired = 1;
}

static void cev_timer_cb(struct ev_loop *L, ev_timer *w, int revents) {
	((cev_t *)ev_userdata(L))->timer_fired = 1;
}

// Counts what libev invokes, so that the Go driver can tell a spurious
// wake-up (nothing invoked) from an iteration that ran only C watchers.
static void cev_invoke(struct ev_loop *L) {
	cev_t *c = ev_userdata(L);
	c->invoked += ev_pending_count(L);
	ev_invoke_pending(L);
}

static cev_t *cev_new(int *err) {
	cev_t *c = calloc(1, sizeof *c);
	if (!c) {
		*err = ENOMEM;
		return NULL;
	}
	c->cap = 256;
	c->recs = malloc((size_t)c->cap * sizeof *c->recs);
	if (!c->recs) {
		free(c);
		*err = ENOMEM;
		return NULL;
	}
	// libev aborts the process when it cannot create the eventfd behind
	// ev_async (EMFILE). Hold one fd while the loop is made and release it
	// just before ev_async_start, so fd exhaustion is an error here.
	int probe = eventfd(0, EFD_CLOEXEC);
	if (probe < 0) {
		*err = errno;
		free(c->recs);
		free(c);
		return NULL;
	}
	// ev.h has no accessor for the loop's epoll fd, and epoll_ctl on it
	// (EINVAL) is an assertion failure in libev: Watch must refuse it. The
	// kernel gives epoll_create the lowest free fd; note which that is and
	// confirm below that an epoll fd now has that number.
	int lowest = fcntl(probe, F_DUPFD_CLOEXEC, 0);
	if (lowest >= 0) {
		close(lowest);
	}
	errno = 0;
	c->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!c->loop) {
		*err = errno ? errno : EINVAL;
		close(probe);
		free(c->recs);
		free(c);
		return NULL;
	}
	c->epfd = -1;
	if (lowest >= 0 && (ev_backend(c->loop) & EVBACKEND_EPOLL)) {
		char path[64], link[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", lowest);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n > 0) {
			link[n] = 0;
			if (strcmp(link, "anon_inode:[eventpoll]") == 0) {
				c->epfd = lowest;
			}
		}
	}
	ev_set_userdata(c->loop, c);
	ev_set_invoke_pending_cb(c->loop, cev_invoke);
	ev_async_init(&c->async, cev_async_cb);
	ev_init(&c->timer, cev_timer_cb);
	close(probe);
	ev_async_start(c->loop, &c->async);
	return c;
}

static void cev_destroy(cev_t *c) {
	ev_timer_stop(c->loop, &c->timer);
	ev_async_stop(c->loop, &c->async);
	ev_loop_destroy(c->loop);
	free(c->recs);
	free(c);
}

// One iteration: arm the heap's ev_timer (timeout < 0: none) and run.
//
// fds are the fds whose watchers changed since the last run: libev calls
// epoll_ctl for them in ev_run and, built with assertions as Debian's is,
// aborts the process on EBADF. If any of them is closed, cev_run moves
// those to the front of fds and returns their count without running, so
// that the Go side can stop their watchers first.
static int cev_run(cev_t *c, int flags, double timeout, int *fds, int nfds) {
	int nbad = 0;
	for (int i = 0; i < nfds; i++) {
		if (fcntl(fds[i], F_GETFD) < 0 && errno == EBADF) {
			fds[nbad++] = fds[i];
		}
	}
	if (nbad) {
		return nbad;
	}
	c->n = 0;
	c->async_fired = 0;
	c->timer_fired = 0;
	c->lost = 0;
	c->invoked = 0;
	if (timeout >= 0) {
		// ev_timer counts from the loop's cached time, which is as old as
		// the last poll; refresh it so the timer is not early.
		ev_now_update(c->loop);
		ev_timer_stop(c->loop, &c->timer);
		ev_timer_set(&c->timer, timeout, 0.);
		ev_timer_start(c->loop, &c->timer);
	} else if (ev_is_active(&c->timer)) {
		ev_timer_stop(c->loop, &c->timer);
	}
	ev_run(c->loop, flags);
	return 0;
}

static void cev_wake(cev_t *c) {
	ev_async_send(c->loop, &c->async);
}

// libev asserts (aborts) on a negative fd and turns a closed one into an
// EV_ERROR event; check first so a bad fd is an error.
static int cev_io_start(cev_t *c, ev_io *w, int fd, int events, uint64_t h) {
	if (fd < 0) {
		return EBADF;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		return errno;
	}
	if (fd == c->epfd) {
		return EINVAL; // epoll_ctl's EINVAL is an assertion failure in libev
	}
	ev_io_init(w, cev_io_cb, fd, events);
	w->data = (void *)(uintptr_t)h;
	ev_io_start(c->loop, w);
	return 0;
}

static void cev_io_modify(cev_t *c, ev_io *w, int events) {
	ev_io_stop(c->loop, w);
	ev_io_modify(w, events);
	if (events) {
		ev_io_start(c->loop, w);
	}
}

static void cev_io_stop(cev_t *c, ev_io *w) {
	ev_io_stop(c->loop, w);
}
*/
import "C"

import (
	"errors"
	"fmt"
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
	// the ev_async fired and the posts have not run yet
	postsDue bool

	slots  []slot
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
	l := &Loop{c: c, timers: loop.NewTimerHeap()}
	l.posts = loop.NewPostQueue(l.wake)
	l.relay = loop.NewSignalRelay(l.posts.Post)
	return l, nil
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
	s := &l.slots[i]
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
	base := int32(len(l.slots))
	for i := 0; i < chunk; i++ {
		l.slots = append(l.slots, slot{io: (*C.ev_io)(unsafe.Add(p, i*C.sizeof_ev_io)), gen: 1})
	}
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
		if int(i) >= len(l.slots) {
			continue
		}
		s := &l.slots[i]
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
	if l.postsDue && !l.closed {
		l.postsDue = false
		ran += l.posts.Run()
	}
	if ran > 0 {
		l.batch.Ran()
		l.spin = spinPolls
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
		for i := range l.slots {
			s := &l.slots[i]
			if w := s.w; w != nil && w.fd == int(fd) && !w.dead {
				C.cev_io_stop(l.c, s.io)
				w.dead = true
				if w.events != 0 {
					l.killed = append(l.killed, C.cev_rec{h: C.uint64_t(s.handle(int32(i))), revents: C.EV_ERROR})
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
	for i := range l.slots {
		if w := l.slots[i].w; w != nil {
			w.stopped = true
			w.events = 0
			l.slots[i].w = nil
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
	s := &l.slots[w.slot]
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
	C.cev_io_modify(l.c, l.slots[w.slot].io, evMask(ev))
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
