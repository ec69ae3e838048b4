package scheduler

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// fakeLoop is a loop.Loop that only records: posted functions wait in a
// queue until the test runs them (the test goroutine plays the loop's),
// and a watcher records what it was armed for. It lets a test put a
// waiter and the loop's callbacks in any order it wants.
type fakeLoop struct {
	mu      sync.Mutex
	posted  []func()
	posts   int
	watches int
	w       *fakeWatcher
}

type fakeWatcher struct {
	l        *fakeLoop
	ev       loop.Events
	modifies int
}

func (l *fakeLoop) Name() string { return "fake" }

func (l *fakeLoop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watches++
	l.w = &fakeWatcher{l: l, ev: ev}
	return l.w, nil
}

func (l *fakeLoop) Timer(after, repeat time.Duration, cb func()) loop.Timer { return nil }

func (l *fakeLoop) Signal(os.Signal, func(os.Signal)) (loop.Watcher, error) {
	return nil, errors.ErrUnsupported
}

func (l *fakeLoop) Post(fn func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.posts++
	l.posted = append(l.posted, fn)
	return nil
}

func (l *fakeLoop) Run() error             { return nil }
func (l *fakeLoop) RunOnce(bool) error     { return nil }
func (l *fakeLoop) Stop()                  {}
func (l *fakeLoop) Now() time.Time         { return time.Now() }
func (l *fakeLoop) Close() error           { return nil }
func (w *fakeWatcher) Stop() error         { return nil }
func (w *fakeWatcher) Events() loop.Events { return w.ev }

func (w *fakeWatcher) Modify(ev loop.Events) error {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.modifies++
	w.ev = ev
	return nil
}

// runPosted runs the functions posted so far, as the loop would.
func (l *fakeLoop) runPosted() int {
	l.mu.Lock()
	fns := l.posted
	l.posted = nil
	l.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	return len(fns)
}

func (l *fakeLoop) counts() (posts, pending, watches, modifies int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		modifies = l.w.modifies
	}
	return l.posts, len(l.posted), l.watches, modifies
}

// newFakePD is a level-triggered pollDesc on a fake loop (fd 1000: the
// fake loop never touches it).
func newFakePD(t *testing.T) (*pollDesc, *fakeLoop) {
	t.Helper()
	fl := &fakeLoop{}
	pd := &pollDesc{}
	pd.init(&Hub{loop: fl}, 1000)
	return pd, fl
}

// levelWaiter waits on pd's read side in a loop, as a reader whose read(2)
// keeps saying EAGAIN does: each nil return of wait is reported on woken,
// then the waiter waits until proceed (nil proceed: goes on at once). It
// ends when a wait fails.
func levelWaiter(pd *pollDesc, proceed <-chan struct{}) (woken <-chan int, done <-chan error) {
	w, d := make(chan int, 1000), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := pd.wait(modeRead); err != nil {
				d <- err
				return
			}
			w <- i
			if proceed != nil {
				<-proceed
			}
		}
	}()
	return w, d
}

func parked(pd *pollDesc) bool { return pd.side[modeRead].state.Load() == stWaiting }

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 100*time.Microsecond, what)
}

// stopWaiter closes pd and requires the waiter to return net.ErrClosed.
func stopWaiter(t *testing.T, pd *pollDesc, done <-chan error) {
	t.Helper()
	pd.evict()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, errClosing, "the waiter's wait after Close")
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not return after Close")
	}
}

// TestLevelArmedWhileWaiting: on a level-triggered loop, a direction whose
// waiter keeps waiting stays armed. The first wait posts the arm; every
// later wait of a reader that is woken and waits again parks on the armed
// watcher with no Post (a cross-thread wake-up of the loop) and no
// re-arming syscall.
func TestLevelArmedWhileWaiting(t *testing.T) {
	pd, fl := newFakePD(t)
	woken, done := levelWaiter(pd, nil)
	eventually(t, func() bool { p, _, _, _ := fl.counts(); return p == 1 && parked(pd) }, "the first wait posts its arm and parks")
	require.Equal(t, 1, fl.runPosted())
	_, _, watches, _ := fl.counts()
	require.Equal(t, 1, watches, "the arm registered a watcher")
	require.Equal(t, loop.Readable, fl.w.Events(), "armed for reading")

	const rounds = 200
	for i := range rounds {
		pd.fire(loop.Readable)
		select {
		case got := <-woken:
			require.Equal(t, i, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the parked waiter was not woken", i)
		}
		eventually(t, func() bool { return parked(pd) }, "the waiter waits again")
	}
	posts, pending, watches, modifies := fl.counts()
	assert.Equal(t, 1, posts, "Posts for %d waits of a waiter that kept waiting (one, the first arm, is the rule)", rounds+1)
	assert.Zero(t, pending)
	assert.Equal(t, 1, watches, "watchers registered")
	assert.Zero(t, modifies, "re-arming syscalls (Modify) while the waiter kept waiting")
	assert.Equal(t, uint32(loop.Readable), pd.armedBits.Load(), "the direction is still armed")
	stopWaiter(t, pd, done)
}

// TestLevelIdleDisarmsOnce: an event that finds nobody waiting disarms
// the direction (an undrained fd nobody waits for fires once, not for
// ever) and marks it ready for the next wait, which then returns at once.
func TestLevelIdleDisarmsOnce(t *testing.T) {
	pd, fl := newFakePD(t)
	proceed := make(chan struct{})
	woken, done := levelWaiter(pd, proceed)
	eventually(t, func() bool { return parked(pd) }, "the first wait parks")
	fl.runPosted()
	pd.fire(loop.Readable) // wakes the waiter, which now holds at proceed
	<-woken
	pd.fire(loop.Readable) // nobody waits: disarm, mark ready
	_, _, _, modifies := fl.counts()
	assert.Equal(t, 1, modifies, "one disarm")
	assert.Zero(t, pd.armedBits.Load(), "disarmed")
	assert.Equal(t, loop.Events(0), fl.w.Events(), "the watcher is armed for nothing")
	pd.fire(loop.Readable) // a stale event of the same poll: ignored
	_, _, _, modifies = fl.counts()
	assert.Equal(t, 1, modifies, "no further syscall for a disarmed direction")
	proceed <- struct{}{}
	select {
	case <-woken: // the readiness marked while nobody waited
	case <-time.After(5 * time.Second):
		t.Fatal("a wait after an event that found nobody waiting did not return")
	}
	close(proceed)
	stopWaiter(t, pd, done)
}

// TestLevelDisarmThenMarkReady: the race of the level path. An event that
// finds nobody waiting must disarm the direction first and mark it ready
// after: a waiter that arrives in between must either find it ready or
// post a new arm. Marked ready first, the waiter could consume the mark,
// retry, see the armed bit still set and park without posting, and the
// disarm that follows would leave it parked on a watcher armed for
// nothing: a lost wake-up. The hook puts the waiter exactly there, as
// many times as it takes it to park.
func TestLevelDisarmThenMarkReady(t *testing.T) {
	pd, fl := newFakePD(t)
	proceed := make(chan struct{})
	woken, done := levelWaiter(pd, proceed)
	eventually(t, func() bool { return parked(pd) }, "the first wait parks")
	fl.runPosted()
	pd.fire(loop.Readable)
	<-woken // the waiter holds at proceed: busy, not waiting

	hooked := 0
	testHookFireDisarmed = func() {
		hooked++
		// Let the waiter run until it parks, whatever it finds.
		for range 3 {
			proceed <- struct{}{}
			deadline := time.Now().Add(5 * time.Second)
			for !parked(pd) && time.Now().Before(deadline) {
				select {
				case <-woken: // its wait returned at once: it waits again
					goto next
				default:
					time.Sleep(50 * time.Microsecond)
				}
			}
			return
		next:
		}
		t.Error("the waiter neither parked nor stopped returning")
	}
	defer func() { testHookFireDisarmed = nil }()
	pd.fire(loop.Readable) // nobody waits: disarm, (hook), mark ready
	testHookFireDisarmed = nil
	require.Equal(t, 1, hooked, "the event took the idle path")

	// The waiter must not be parked on a disarmed direction with no arm
	// on its way.
	_, pending, _, _ := fl.counts()
	armed := pd.armedBits.Load()&uint32(loop.Readable) != 0
	if parked(pd) {
		require.True(t, armed || pending > 0,
			"lost wake-up: the waiter is parked, the direction is disarmed and no arm is posted")
	}
	fl.runPosted()
	pd.fire(loop.Readable)
	select {
	case <-woken:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was never woken")
	}
	close(proceed)
	stopWaiter(t, pd, done)
}

// TestDeadlineRacesReadiness: a deadline expiring while readiness arrives,
// from two other goroutines, at every offset (and, every other round, with
// no readiness at all): the wait always returns (nil, or
// os.ErrDeadlineExceeded; only the latter without readiness), and once the
// deadline has passed, every wait fails with it even though readiness is
// marked.
func TestDeadlineRacesReadiness(t *testing.T) {
	pd, fl := newFakePD(t)
	s := &pd.side[modeRead]
	const rounds = 2000
	expired := 0
	for i := range rounds {
		s.state.Store(stIdle)
		d := time.Duration(rand.IntN(200)) * time.Microsecond
		s.setDeadline(time.Now().Add(d))
		res := make(chan error, 1)
		go func() { res <- pd.wait(modeRead) }()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
			fl.runPosted() // arm, if the waiter posted one
			if i%2 == 0 {
				s.ready() // what fire does for an armed, waited direction
			}
		}()
		var err error
		select {
		case err = <-res:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the wait hung (deadline in %v racing readiness)", i, d)
		}
		wg.Wait()
		if err != nil || i%2 == 1 {
			// Without readiness only the deadline can end the wait.
			require.ErrorIs(t, err, os.ErrDeadlineExceeded, "round %d", i)
		}
		// Once the deadline has passed, readiness does not make a wait
		// succeed.
		eventually(t, func() bool { return s.dl.Load() < 0 }, "the deadline expires")
		s.ready()
		require.ErrorIs(t, pd.wait(modeRead), os.ErrDeadlineExceeded, "round %d: wait after the deadline", i)
		if err != nil {
			expired++
		}
		s.setDeadline(time.Time{})
	}
	t.Logf("%d of %d waits ended by their deadline, the rest by readiness", expired, rounds)
	s.stopTimer()
	fl.runPosted()
}

// TestWaitWakesOnClose: evict releases a parked waiter with net.ErrClosed
// (and every later wait fails at once).
func TestWaitWakesOnClose(t *testing.T) {
	pd, _ := newFakePD(t)
	var returned atomic.Bool
	_, done := levelWaiter(pd, nil)
	eventually(t, func() bool { return parked(pd) }, "the wait parks")
	assert.False(t, returned.Load())
	stopWaiter(t, pd, done)
	assert.ErrorIs(t, pd.wait(modeWrite), errClosing)
}

// TestSleepWakesAfterItsDeadline: Accept's back-off sleep must return once
// its time has passed however late its caller ran between taking the
// deadline and starting the timer. With the timer started first and the
// deadline taken after a delay, the timer fired before the deadline, the
// sleeper parked again, and nothing woke it (Accept stuck after EMFILE on
// a loaded machine). The hook delays the caller 20 ms there.
func TestSleepWakesAfterItsDeadline(t *testing.T) {
	pd, _ := newFakePD(t)
	testHookSleepDeadline = func() { time.Sleep(20 * time.Millisecond) }
	defer func() { testHookSleepDeadline = nil }()
	done := make(chan error, 1)
	go func() { done <- pd.sleep(modeRead, 5*time.Millisecond) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		pd.closing.Store(true)
		pd.side[modeRead].signal()
		t.Fatal("sleep did not return after its deadline")
	}
}
