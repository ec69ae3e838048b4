package scheduler

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evhub/evhub/loop"
)

// The scheduler's one wait primitive. A pollDesc holds, per fd and per
// direction, the state that Go's internal/poll pollDesc keeps in the
// runtime: whether readiness has been seen since the last wait, whether a
// goroutine is parked, and the deadline. Every socket type waits through
// it. See the package doc for why it is built this way.

const (
	modeRead  = 0
	modeWrite = 1
)

// waitSide states.
const (
	stIdle    uint32 = iota // nothing seen, nobody parked
	stReady                 // readiness seen since the last wait
	stWaiting               // a goroutine is parked
)

var clockBase = time.Now()

// mono is a monotonic clock in nanoseconds.
func mono() int64 { return int64(time.Since(clockBase)) }

type waitSide struct {
	state atomic.Uint32
	// wake carries wake-ups to a parked goroutine: readiness, an expired
	// deadline, Close. Stale tokens only cause a spurious re-check.
	wake chan struct{}
	// task is the cooperative task parked here, if the waiter is one; it is
	// published before the state says stWaiting.
	task atomic.Pointer[Task]
	// dl: 0 no deadline, -1 expired, else mono() nanoseconds.
	dl    atomic.Int64
	mu    sync.Mutex // guards timer
	timer *time.Timer
}

func (s *waitSide) signal() {
	if t := s.task.Load(); t != nil {
		t.wake()
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// park blocks the waiter until signal: a task switches to its hub, a
// goroutine parks on the channel.
func (s *waitSide) park(t *Task) {
	if t != nil {
		t.park()
		return
	}
	<-s.wake
}

// ready records readiness; called on the loop goroutine.
func (s *waitSide) ready() {
	if s.state.Swap(stReady) == stWaiting {
		s.signal()
	}
}

func (s *waitSide) setDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.IsZero() {
		s.dl.Store(0)
		if s.timer != nil {
			s.timer.Stop()
		}
		return
	}
	d := time.Until(t)
	if d <= 0 {
		s.dl.Store(-1)
		if s.timer != nil {
			s.timer.Stop()
		}
		s.signal()
		return
	}
	// dl is computed before the timer starts, so the timer never fires
	// before dl has passed.
	s.dl.Store(mono() + int64(d))
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.expire)
	} else {
		s.timer.Reset(d)
	}
}

func (s *waitSide) expire() {
	s.mu.Lock()
	dl := s.dl.Load()
	expired := dl > 0 && mono() >= dl
	if expired {
		s.dl.Store(-1)
	}
	s.mu.Unlock()
	if expired {
		s.signal()
	}
}

func (s *waitSide) stopTimer() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
}

// pollDesc is the wait state of one fd.
type pollDesc struct {
	h    *Hub
	fd   int
	side [2]waitSide

	closing atomic.Bool
	// fatal is an error from registering the fd on the loop; waits return it.
	fatal atomic.Pointer[error]
	// requested is set once the edge registration has been posted.
	requested atomic.Bool
	// armedBits mirrors armed for waiters (level-triggered loops): a wait
	// whose direction is still armed parks without posting.
	armedBits atomic.Uint32

	// Posted functions, bound once so a wait allocates nothing.
	armFn      [2]func()
	registerFn func()

	// Loop goroutine only.
	w     loop.IOWatcher
	armed loop.Events
	dead  bool
}

func (pd *pollDesc) init(h *Hub, fd int) {
	pd.h = h
	pd.fd = fd
	pd.side[0].wake = make(chan struct{}, 1)
	pd.side[1].wake = make(chan struct{}, 1)
	if h.edge != nil {
		pd.registerFn = pd.registerEdge
	} else {
		pd.armFn = [2]func(){pd.armRead, pd.armWrite}
	}
}

// prepare fails fast on a closed fd or an expired deadline, before the
// syscall is tried, as internal/poll does.
func (pd *pollDesc) prepare(mode int) error {
	if pd.closing.Load() {
		return errClosing
	}
	if pd.side[mode].dl.Load() < 0 {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// wait parks the calling goroutine until the fd may be ready in mode, the
// deadline passes, or the fd is closed. A nil return means "retry the
// syscall", which may again say EAGAIN.
func (pd *pollDesc) wait(mode int) error {
	return pd.side[mode].wait(&pd.closing, pd, mode)
}

// wait parks the caller (goroutine or task) on s until s is marked ready,
// its deadline passes, or closing is set: the one wait loop of every hub
// socket. pd, for a socket with an fd, is its poll state: a registration
// error ends the wait, and the loop is asked to report readiness in mode
// before the caller parks. Without pd (a loop that owns its sockets
// reports readiness unasked) s alone is waited on. A nil return means
// "look again"; wake-ups may be spurious.
func (s *waitSide) wait(closing *atomic.Bool, pd *pollDesc, mode int) error {
	t := currentTask()
	if t != nil {
		s.task.Store(t)
		defer s.task.Store(nil)
	}
	for {
		if closing.Load() {
			return errClosing
		}
		if s.dl.Load() < 0 {
			return os.ErrDeadlineExceeded
		}
		if pd != nil {
			if e := pd.fatal.Load(); e != nil {
				return *e
			}
		}
		if t != nil && t.ctx.Err() != nil {
			return t.ctx.Err()
		}
		if s.state.CompareAndSwap(stReady, stIdle) {
			return nil
		}
		if !s.state.CompareAndSwap(stIdle, stWaiting) {
			continue
		}
		// Closers and deadlines set their flag, then signal: re-checking
		// after publishing stWaiting closes the lost-wake-up window.
		if closing.Load() || s.dl.Load() < 0 || (t != nil && t.ctx.Err() != nil) {
			s.state.CompareAndSwap(stWaiting, stIdle)
			continue
		}
		if pd != nil {
			if err := pd.arm(mode); err != nil {
				s.state.CompareAndSwap(stWaiting, stIdle)
				return err
			}
		}
		s.park(t)
		s.state.CompareAndSwap(stWaiting, stIdle)
	}
}

// sleep parks the caller for d or until the fd is closed or the mode's
// deadline passes (Accept's back-off on EMFILE).
func (pd *pollDesc) sleep(mode int, d time.Duration) error {
	s := &pd.side[mode]
	t := currentTask()
	if t != nil {
		s.task.Store(t)
		defer s.task.Store(nil)
	}
	// The deadline is taken before the timer starts, so the timer never
	// fires before the deadline has passed: the other way round, a caller
	// descheduled between the two (a loaded machine, -race) woke before
	// its deadline, parked again, and nothing woke it any more.
	deadline := mono() + int64(d)
	if testHookSleepDeadline != nil {
		testHookSleepDeadline()
	}
	tm := time.AfterFunc(d, s.signal)
	defer tm.Stop()
	for mono() < deadline {
		if pd.closing.Load() {
			return errClosing
		}
		if s.dl.Load() < 0 {
			return os.ErrDeadlineExceeded
		}
		if t != nil && t.ctx.Err() != nil {
			return t.ctx.Err()
		}
		s.park(t)
	}
	return nil
}

// arm makes sure the loop will report readiness for mode. With an
// edge-triggered loop the fd is registered once and never again. With a
// level-triggered loop a wait arms its direction with a Post, unless it is
// still armed: an event that finds a waiter wakes it and leaves the
// direction armed for that waiter's next wait (a connection that keeps
// reading posts nothing), while an event that finds nobody waiting
// disarms it, so an undrained fd nobody waits for fires once, not forever.
func (pd *pollDesc) arm(mode int) error {
	h := pd.h
	if h.edge != nil {
		if pd.requested.Load() || !pd.requested.CompareAndSwap(false, true) {
			return nil
		}
		return h.post(pd.registerFn)
	}
	if pd.armedBits.Load()&uint32(modeEvents[mode]) != 0 {
		return nil
	}
	return h.post(pd.armFn[mode])
}

var modeEvents = [2]loop.Events{loop.Readable, loop.Writable}

// testHookSleepDeadline, if set, runs in sleep between taking the
// deadline and starting the timer: tests delay the caller there.
var testHookSleepDeadline func()

// testHookFireDisarmed, if set, runs in fire between disarming the idle
// directions and marking them ready: tests put a waiter there.
var testHookFireDisarmed func()

func (pd *pollDesc) registerEdge() {
	if pd.dead {
		return
	}
	w, err := pd.h.edge.WatchEdge(pd.fd, loop.Readable|loop.Writable, pd.fire)
	if err != nil {
		pd.fail(err)
		return
	}
	pd.w = w
}

func (pd *pollDesc) armRead()  { pd.armLevel(modeRead, loop.Readable) }
func (pd *pollDesc) armWrite() { pd.armLevel(modeWrite, loop.Writable) }

func (pd *pollDesc) armLevel(mode int, ev loop.Events) {
	if pd.dead || pd.armed&ev != 0 || pd.side[mode].state.Load() != stWaiting {
		return
	}
	pd.setArmed(pd.armed | ev)
	var err error
	if pd.w == nil {
		pd.w, err = pd.h.loop.Watch(pd.fd, pd.armed, pd.fire)
	} else {
		err = pd.w.Modify(pd.armed)
	}
	if err != nil {
		pd.setArmed(pd.armed &^ ev)
		pd.fail(err)
	}
}

func (pd *pollDesc) setArmed(ev loop.Events) {
	pd.armed = ev
	pd.armedBits.Store(uint32(ev))
}

func (pd *pollDesc) fail(err error) {
	pd.fatal.Store(&err)
	pd.side[0].signal()
	pd.side[1].signal()
}

// fire is the watcher callback, on the loop goroutine.
func (pd *pollDesc) fire(ev loop.Events) {
	if pd.dead {
		return
	}
	if pd.h.edge != nil {
		if ev&loop.Readable != 0 {
			pd.side[modeRead].ready()
		}
		if ev&loop.Writable != 0 {
			pd.side[modeWrite].ready()
		}
		return
	}
	// Level-triggered: a direction with a parked waiter stays armed; the
	// others are disarmed first and only then marked ready, so that a
	// waiter that parked on the strength of the armed bit meanwhile is
	// woken by the Swap below rather than lost.
	var idle loop.Events
	for mode, e := range modeEvents {
		if ev&e == 0 || pd.armed&e == 0 {
			continue
		}
		s := &pd.side[mode]
		if s.state.CompareAndSwap(stWaiting, stReady) {
			s.signal()
			continue
		}
		idle |= e
	}
	if idle == 0 {
		return
	}
	pd.setArmed(pd.armed &^ idle)
	if err := pd.w.Modify(pd.armed); err != nil {
		pd.fail(err)
	}
	if testHookFireDisarmed != nil {
		testHookFireDisarmed()
	}
	for mode, e := range modeEvents {
		if idle&e != 0 {
			pd.side[mode].ready()
		}
	}
}

// evict wakes every waiter with errClosing; called by Close.
func (pd *pollDesc) evict() {
	pd.closing.Store(true)
	for i := range pd.side {
		pd.side[i].stopTimer()
		pd.side[i].signal()
	}
}

func (pd *pollDesc) setDeadline(t time.Time, read, write bool) {
	if read {
		pd.side[modeRead].setDeadline(t)
	}
	if write {
		pd.side[modeWrite].setDeadline(t)
	}
}

// deregister stops the watcher; on the loop goroutine, before the fd is
// closed, so a reused fd number never receives this watcher's events.
func (pd *pollDesc) deregister() {
	pd.dead = true
	if pd.w != nil {
		_ = pd.w.Stop()
		pd.w = nil
	}
}
