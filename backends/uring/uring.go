//go:build linux && uring

package uring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

func init() {
	loop.Register(Name, func() (loop.Loop, error) {
		l, err := New()
		if err != nil {
			return nil, err
		}
		return l, nil
	})
}

// Ring sizes: the SQ is flushed whenever it fills, so its size bounds only
// how many requests one io_uring_enter carries; the CQ is larger, since a
// batch can complete a request per watched fd (and the kernel keeps what
// does not fit, IORING_FEAT_NODROP).
const (
	sqEntries = 256
	cqEntries = 4096
	maxBatch  = 256 // completions copied out of the CQ at a time
)

// spinLooks is how many iterations after one that ran callbacks look at
// the CQ and the posts without sleeping, each after a Gosched.
var spinLooks = 2

// user_data of a request: kind in the top byte, then the slot's
// generation (24 bits) and the slot (32 bits) of a watch.
const (
	kindWatch  = 1
	kindWake   = 2
	kindIgnore = 3 // removals and cancellations: their completion says nothing

	genMask = 1<<24 - 1
)

func watchData(slot int32, gen uint32) uint64 {
	return kindWatch<<56 | uint64(gen&genMask)<<32 | uint64(uint32(slot))
}

var (
	wakeData      = uint64(kindWake) << 56
	ignoreData    = uint64(kindIgnore) << 56
	cancelAllData = uint64(kindIgnore)<<56 | 1 // Close's cancellation of every request
)

// IORING_ASYNC_CANCEL_ANY: cancel every request (Linux 5.19).
const cancelAny = 1 << 2

// ErrWatcherStopped is wrapped by the error of Modify on a stopped
// watcher.
var ErrWatcherStopped = errors.New("watcher stopped")

// ErrReentrant is returned by Run or RunOnce called while the loop runs.
var ErrReentrant = errors.New("uring: Run or RunOnce called while the loop is running")

// Loop is a loop.Loop on an io_uring instance. Create it with [New] or
// loop.Open("uring").
type Loop struct {
	r      *ring
	posts  *loop.PostQueue
	sigs   *loop.SignalRelay
	timers *loop.TimerHeap

	// The wake-up: an eventfd with an IORING_OP_READ pending on it. A
	// poster writes it only while the loop sleeps (or is about to) in
	// io_uring_enter and no other poster has: sleeping and wakeSent
	// follow Dekker's protocol with the queue's own state, so no wake-up
	// is lost and a busy loop costs posters no syscall.
	wakeMu   sync.RWMutex // orders writes of efd against its close
	efd      int
	sleeping atomic.Bool
	wakeSent atomic.Bool
	stopReq  atomic.Bool
	// efdBuf receives the eventfd's counter; the kernel writes it, so it
	// stays here, in the heap, where nothing moves it.
	efdBuf [8]byte

	// Loop goroutine only from here on.
	closed   bool
	running  bool
	readLive bool       // the eventfd read is in the kernel
	yield    loop.Batch // the last iteration ran callbacks: Gosched before sleeping
	spin     int        // looks without sleeping left before the next wait
	watches  table[watcher]
	arms     []*watcher // watchers whose poll request goes out with the next enter
	cqes     []cqe      // the batch being dispatched, from cqi on
	cqi      int

	// Completion I/O (compio.go): made on first use.
	br         [2]*bufRing // the provided-buffer rings by group, made on the first Recv
	recvs      recvTable
	rcvs       receivers // the Receivers recvs names by id
	sends      table[sendOp]
	spareSends []*sendOp // finished Sends, for reuse
	inflight   int       // Sends in the kernel
}

// table names what has requests in the kernel (watchers, receives,
// sends) by slot: a request's user_data carries the slot and a
// generation, which changes each time a request is abandoned (Stop,
// Modify), so that its late completions are recognised, also after the
// slot passed to another owner. The table holds only pointers; each
// owner keeps its own slot and generation. Slots live in fixed blocks of
// tableBlock, so a crowd of sockets arriving leaves no outgrown arrays
// behind for the collector (a doubling slice allocates about twice its
// final size on the way there: 22 B of garbage per connection at 5,000).
type table[T any] struct {
	blocks []*[tableBlock]*T
	n      int32 // slots handed out: blocks hold 0..n-1
	free   []freeSlot
}

// tableBlock is how many slots one block of a table holds (2 KiB of
// pointers).
const tableBlock = 256

// freeSlot is a free slot and the generation its next owner starts at.
type freeSlot struct {
	slot int32
	gen  uint32
}

// add gives v a slot: a freed one, with the generation after its last
// owner's, or a new one, where gen (v's own) stays.
func (t *table[T]) add(v *T, gen uint32) (slot int32, g uint32) {
	if n := len(t.free); n > 0 {
		f := t.free[n-1]
		t.free = t.free[:n-1]
		t.set(f.slot, v)
		return f.slot, f.gen
	}
	if int(t.n) == len(t.blocks)*tableBlock {
		t.blocks = append(t.blocks, new([tableBlock]*T))
	}
	slot = t.n
	t.n++
	t.set(slot, v)
	return slot, gen
}

func (t *table[T]) set(slot int32, v *T) { t.blocks[slot/tableBlock][slot%tableBlock] = v }

// remove frees slot; its next owner starts at gen.
func (t *table[T]) remove(slot int32, gen uint32) {
	t.set(slot, nil)
	t.free = append(t.free, freeSlot{slot, gen})
}

// get returns the owner of slot, nil if none.
func (t *table[T]) get(slot int32) *T {
	if uint32(slot) >= uint32(t.n) {
		return nil
	}
	return t.blocks[slot/tableBlock][slot%tableBlock]
}

// each calls f with every slot's owner, nil ones left out.
func (t *table[T]) each(f func(slot int32, v *T)) {
	for i := range t.n {
		if v := t.get(i); v != nil {
			f(i, v)
		}
	}
}

// New opens an io_uring loop: a ring (one fd, two mappings) and an
// eventfd. Where io_uring cannot run — an old kernel, a seccomp profile
// that refuses io_uring_setup, the io_uring_disabled sysctl — it returns
// an error wrapping errors.ErrUnsupported that names the cause.
func New() (*Loop, error) {
	r, err := newRing(sqEntries, cqEntries)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = r.close()
		return nil, fmt.Errorf("uring: %w", os.NewSyscallError("eventfd", err))
	}
	l := &Loop{r: r, efd: efd, timers: loop.NewTimerHeap()}
	l.posts = loop.NewPostQueue(l.wake)
	l.sigs = loop.NewSignalRelay(l.Post)
	return l, nil
}

// Name returns "uring".
func (l *Loop) Name() string { return Name }

// Now returns the current time.
func (l *Loop) Now() time.Time { return time.Now() }

// Unsupported reports no missing capability: io_uring polls any pollable
// fd.
func (l *Loop) Unsupported() map[loop.Capability]string { return nil }

// ---- posts, stop, signals, timers ----

// Post queues fn to run on the loop goroutine; safe from any goroutine.
func (l *Loop) Post(fn func()) error { return l.posts.Post(fn) }

// wake is the PostQueue's (and Stop's) wake-up: it writes the eventfd
// only if the loop sleeps, or is about to, and no one has written it
// since.
func (l *Loop) wake() {
	if !l.sleeping.Load() || !l.wakeSent.CompareAndSwap(false, true) {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	l.wakeMu.RLock()
	if l.efd >= 0 {
		// EAGAIN (a full counter) leaves it readable anyway.
		_, _ = unix.Write(l.efd, one[:])
	}
	l.wakeMu.RUnlock()
}

// Stop makes Run return after the current iteration; safe from any
// goroutine. A Stop while the loop is not running makes the next Run (or
// RunOnce) return after one iteration.
func (l *Loop) Stop() {
	l.stopReq.Store(true)
	l.wake()
}

// Signal calls cb on the loop goroutine each time sig arrives (through
// os/signal; the loop installs no signal handler of its own).
func (l *Loop) Signal(sig os.Signal, cb func(os.Signal)) (loop.Watcher, error) {
	if l.closed {
		return nil, fmt.Errorf("uring: signal %v: %w", sig, loop.ErrClosed)
	}
	w, err := l.sigs.Watch(sig, cb)
	if err != nil {
		return nil, fmt.Errorf("uring: signal %v: %w", sig, err)
	}
	return w, nil
}

// deadTimer is the Timer of a closed loop or a nil callback.
type deadTimer struct{}

func (deadTimer) Stop() bool                    { return false }
func (deadTimer) Reset(_, _ time.Duration) bool { return false }

// Timer calls cb once after `after`, then every `repeat` if repeat > 0.
// The loop's wait is bounded by the earliest deadline (the timeout of
// io_uring_enter), so no timer needs a request of its own.
func (l *Loop) Timer(after, repeat time.Duration, cb func()) loop.Timer {
	if l.closed || cb == nil {
		return deadTimer{}
	}
	return l.timers.Add(after, repeat, cb)
}

// ---- running ----

// Run runs the loop until Stop or Close.
func (l *Loop) Run() error {
	if err := l.enter("run"); err != nil {
		return err
	}
	defer l.leave()
	for !l.closed {
		if l.stopReq.Swap(false) {
			return nil
		}
		l.iterate(true)
	}
	return nil
}

// RunOnce runs one iteration: it submits what is queued, collects the
// completions, fires the due timers and runs the posted functions. With
// block it first waits until one of them ran (or Stop). A pending Stop is
// consumed by it.
func (l *Loop) RunOnce(block bool) error {
	if err := l.enter("run once"); err != nil {
		return err
	}
	defer l.leave()
	for l.iterate(block) == 0 && block && !l.closed && !l.stopReq.Load() {
	}
	l.stopReq.Store(false)
	return nil
}

func (l *Loop) enter(op string) error {
	switch {
	case l.closed:
		return fmt.Errorf("uring: %s: %w", op, loop.ErrClosed)
	case l.running:
		return fmt.Errorf("uring: %s: %w", op, ErrReentrant)
	}
	l.running = true
	return nil
}

// leave ends Run or RunOnce, also when a callback panics. A Close from a
// callback releases the ring here, once nothing of it is on the stack;
// otherwise what was queued during the last callbacks (a stopped watch's
// removal) goes to the kernel now rather than at the next run, so that
// the kernel drops its reference to a file the caller closes meanwhile.
func (l *Loop) leave() {
	l.running = false
	l.sleeping.Store(false)
	if l.closed {
		_ = l.release()
		return
	}
	l.submitNow()
}

// iterate is one iteration; it returns how many callbacks ran.
func (l *Loop) iterate(block bool) int {
	l.flushArms()
	for _, b := range l.br {
		if b != nil && b.short {
			b.short = false
			b.grow(int(b.given))
		}
	}
	wait, timeout := false, int64(-1)
	if block && l.cqi >= len(l.cqes) {
		// Let the goroutines the last callbacks readied run before this
		// thread sleeps with them in its P's run-next slot.
		l.yield.Yield()
		wait = true
		if l.spin > 0 {
			// Just after a busy iteration, look again without sleeping
			// (after yielding once more): the goroutines just readied
			// often Post or write at once, and a look at the CQ costs no
			// syscall, while a sleep costs the thread a wake-up.
			l.spin--
			l.yield.Ran()
			wait = false
		}
		// The clock is read only when a timer is pending: two reads per
		// iteration were 3% of the reactor's CPU at 64 busy connections.
		if l.timers.Len() > 0 {
			if d, ok := l.timers.Timeout(time.Now()); ok {
				if d <= 0 {
					wait = false
				}
				timeout = int64(d)
			}
		}
		if wait && l.r.ready() {
			wait = false
		}
		if wait {
			l.armWake()
			l.sleeping.Store(true)
			if l.posts.Pending() || l.stopReq.Load() {
				wait = false
			}
		}
	}
	if wait || l.r.pending() > 0 || l.r.overflowed() || l.r.taskRun() {
		l.submit(wait, timeout)
	}
	l.sleeping.Store(false)
	l.wakeSent.Store(false)

	ran := l.dispatch()
	if l.closed {
		return ran + 1
	}
	if l.timers.Len() > 0 {
		ran += l.timers.RunDue(time.Now())
	}
	if l.closed {
		return ran + 1
	}
	ran += l.posts.Run()
	if ran > 0 {
		l.yield.Ran()
		l.spin = spinLooks
	}
	return ran
}

// submit calls io_uring_enter, making room in the CQ first if the kernel
// asks for it.
func (l *Loop) submit(wait bool, timeout int64) {
	for range 64 {
		err := l.r.enter(wait, timeout)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EAGAIN) {
			// Only a broken ring fails otherwise; the completions say the
			// rest.
			return
		}
		// The CQ is full: take what is there (dispatched next), retry.
		l.takeCQEs(0)
		wait = false
	}
}

// submitNow pushes the SQEs written so far (removals) to the kernel
// without waiting. Poll requests of level watchers are not among them:
// they go out with the next iteration's enter, so that the readiness they
// report is that of the iteration that dispatches it.
func (l *Loop) submitNow() {
	if l.r == nil {
		return
	}
	if l.r.pending() > 0 {
		l.submit(false, -1)
	}
}

// awaitAbandoned returns once the final completions of n abandoned
// requests of the watcher in slot are in the CQ or taken from it (they
// are then marked to be ignored, as the slot may be reused before they
// are dispatched), or after a bounded wait. A cancelled poll releases
// its reference to the fd's file only when it completes, and its
// completion runs as task work on the thread that submitted it: on this
// thread, the enter that submitted the cancellation ran it; if the loop
// goroutine has moved to another thread since, the kernel wakes that one
// to run it, which takes microseconds. Until then closing the fd would
// not close the socket.
func (l *Loop) awaitAbandoned(slot int32, n int) {
	mine := func(c *cqe) bool {
		return c.userData>>56 == kindWatch && int32(uint32(c.userData)) == slot && c.flags&cqeFMore == 0
	}
	for i := range 2000 {
		found := 0
		for j := l.cqi; j < len(l.cqes); j++ {
			if mine(&l.cqes[j]) {
				found++
			}
		}
		found += l.r.count(mine)
		if found >= n {
			for j := l.cqi; j < len(l.cqes); j++ {
				if mine(&l.cqes[j]) {
					l.cqes[j].userData = ignoreData
				}
			}
			l.r.mark(mine, ignoreData)
			return
		}
		if l.r.overflowed() {
			l.submit(false, -1) // moves kept completions into the CQ
			continue
		}
		if i > 0 {
			time.Sleep(10 * time.Microsecond)
		}
		l.submit(false, -1) // runs this thread's task work
	}
}

// sqe returns an SQE, flushing the SQ to the kernel when it is full.
func (l *Loop) sqe() *sqe {
	for {
		if s := l.r.get(); s != nil {
			return s
		}
		l.submit(false, -1)
	}
}

// armWake makes sure the eventfd read is in the kernel (it goes out with
// the enter that waits).
func (l *Loop) armWake() {
	if l.readLive {
		return
	}
	s := l.sqe()
	s.opcode = opRead
	s.fd = int32(l.efd)
	s.addr = uint64(uintptrOf(&l.efdBuf[0]))
	s.len = uint32(len(l.efdBuf))
	s.userData = wakeData
	l.readLive = true
}

// takeCQEs moves the CQ's completions to the dispatch queue, until it
// holds max (no bound if max <= 0).
func (l *Loop) takeCQEs(max int) {
	if l.cqi > 0 {
		n := copy(l.cqes, l.cqes[l.cqi:])
		l.cqes, l.cqi = l.cqes[:n], 0
	}
	l.cqes = l.r.reap(l.cqes, max)
}

// dispatch runs the callbacks of the completions in the CQ, taken
// maxBatch at a time so that the queue stays small (a CQ of 4,096
// completions copied at once would keep 64 KiB); it takes at most as
// many batches as the CQ holds completions, so a stream of new ones cannot
// hold the iteration. A completion stays queued until its callback has
// run, so one that panics leaves the rest for the next iteration.
func (l *Loop) dispatch() int {
	ran := 0
	for range cqEntries / maxBatch {
		l.takeCQEs(maxBatch)
		if len(l.cqes) == 0 {
			break
		}
		for l.cqi < len(l.cqes) && !l.closed {
			c := l.cqes[l.cqi]
			l.cqi++
			ran += l.complete(c)
		}
		if l.closed {
			break
		}
		l.cqes, l.cqi = l.cqes[:0], 0
	}
	return ran
}

// complete handles one completion and reports whether a callback ran.
func (l *Loop) complete(c cqe) int {
	switch c.userData >> 56 {
	case kindWake:
		l.readLive = false
		return 0
	case kindWatch:
	case kindRecv:
		return l.completeRecv(c)
	case kindSend:
		return l.completeSend(c)
	default:
		return 0
	}
	w := l.watches.get(int32(uint32(c.userData)))
	if w == nil {
		return 0 // a request abandoned by Stop
	}
	if w.gen != uint32(c.userData>>32)&genMask {
		// A request abandoned by Modify.
		if c.flags&cqeFMore == 0 && w.abandoned > 0 {
			w.abandoned--
		}
		return 0
	}
	live := c.flags&cqeFMore != 0
	w.set(fLive, live)
	var ev loop.Events
	switch {
	case c.res >= 0:
		ev = decode(uint32(c.res)) & w.ev
		if !live {
			// A one-shot (level) request has fired, or the kernel ended a
			// multishot one (CQ overflow): arm the next.
			w.queueArm()
		}
	case c.res == -int32(unix.ECANCELED) && !live:
		// Cancelled by the kernel, not by us (our removals change gen):
		// the thread that submitted it exited. Arm it again.
		w.queueArm()
	default:
		// The fd was closed before its watcher was stopped (EBADF), or
		// the poll could not be armed: report the armed events, so that
		// the next syscall surfaces the error, and arm no more until a
		// Modify.
		ev = w.ev
		w.set(fDead, true)
	}
	if ev == 0 {
		return 0
	}
	w.cb(ev)
	return 1
}

// decode maps poll bits to readiness: hang-up and error count as both
// directions (and a peer's half-close as readable), so that the next
// syscall surfaces them.
func decode(m uint32) loop.Events {
	var ev loop.Events
	if m&(unix.POLLIN|unix.POLLPRI|unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
		ev |= loop.Readable
	}
	if m&(unix.POLLOUT|unix.POLLHUP|unix.POLLERR) != 0 {
		ev |= loop.Writable
	}
	return ev
}

// pollMask is what a request for ev asks the kernel for (hang-up and
// error are always reported).
func pollMask(ev loop.Events) uint32 {
	var m uint32
	if ev&loop.Readable != 0 {
		m |= unix.POLLIN | unix.POLLPRI | unix.POLLRDHUP
	}
	if ev&loop.Writable != 0 {
		m |= unix.POLLOUT
	}
	return m
}

// ---- closing ----

// Close stops the loop and releases the ring (its fd and mappings), the
// eventfd and the signal relay's goroutines; watched fds stay open (they
// are the caller's). Functions posted before Close run first. Called from
// a callback, it makes Run return (nil) and the ring is released as Run
// returns. Closing again is a no-op.
func (l *Loop) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	l.sigs.Close()
	l.posts.Close()
	l.watches.each(func(slot int32, w *watcher) {
		w.set(fStopped, true)
		l.watches.set(slot, nil)
	})
	l.arms = nil
	l.recvs.clear()
	l.rcvs = receivers{}
	l.sends.each(func(_ int32, o *sendOp) { o.send = nil })
	if l.running {
		l.stopReq.Store(true)
		return nil // leave releases
	}
	return l.release()
}

// release cancels what may still write into the loop's memory (the
// eventfd read into efdBuf, receives into the provided buffers) or read
// from its callers' (sends), waits for that, and closes the ring and the
// eventfd.
func (l *Loop) release() error {
	if l.r == nil {
		return nil
	}
	var errs []error
	if l.readLive || l.br[0] != nil || l.inflight > 0 {
		cancelled := false
		if s := l.r.get(); s != nil {
			s.opcode = opAsyncCancel
			s.opFlags = cancelAny
			s.userData = cancelAllData
		}
		// Bounded: every request is cancelled at once, or completes.
		deadline := time.Now().Add(time.Second)
		for (!cancelled || l.readLive) && time.Now().Before(deadline) {
			if err := l.r.enter(true, int64(10*time.Millisecond)); err != nil {
				errs = append(errs, err)
				break
			}
			for _, c := range l.r.reap(nil, 0) {
				switch c.userData {
				case wakeData:
					l.readLive = false
				case cancelAllData:
					cancelled = true
				}
			}
		}
	}
	errs = append(errs, l.r.close())
	l.r = nil
	l.wakeMu.Lock()
	efd := l.efd
	l.efd = -1
	l.wakeMu.Unlock()
	errs = append(errs, os.NewSyscallError("close", unix.Close(efd)))
	l.watches, l.recvs, l.rcvs, l.sends = table[watcher]{}, recvTable{}, receivers{}, table[sendOp]{}
	l.cqes, l.cqi = nil, 0
	l.spareSends, l.inflight = nil, 0
	for g, b := range l.br {
		if b != nil {
			errs = append(errs, b.unmap())
			l.br[g] = nil
		}
	}
	l.timers = loop.NewTimerHeap() // pending timers never fire; drop them
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("uring: close: %w", err)
	}
	return nil
}

var (
	_ loop.Loop    = (*Loop)(nil)
	_ loop.Limited = (*Loop)(nil)
)
