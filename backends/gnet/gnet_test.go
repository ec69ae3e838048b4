//go:build linux

package gnet

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

func TestMain(m *testing.M) {
	if os.Getenv(stallChildEnv) != "" {
		os.Exit(stallChildMain())
	}
	goleak.VerifyTestMain(m)
}

const bound = 5 * time.Second

func newLoop(t testing.TB) *Loop {
	t.Helper()
	l, err := New()
	require.NoError(t, err, "New")
	t.Cleanup(func() { assert.NoError(t, l.Close(), "Close") })
	return l
}

// mode is one way the loop can hold its pollers: one (the default on
// Linux), or two (nested, the BSDs' way) with the running poller replaced
// (the BSDs' default) or re-woken (reuse) after Polling returns.
type mode struct {
	name          string
	nested, reuse bool
}

var modes = []mode{{"one", false, false}, {"nested", true, false}, {"nested-reuse", true, true}}

func (m mode) open() (*Loop, error) {
	l, err := open(m.nested)
	if err != nil {
		return nil, err
	}
	l.reuse = m.reuse
	return l, nil
}

func (m mode) newLoop(t testing.TB) *Loop {
	t.Helper()
	l, err := m.open()
	require.NoError(t, err, "open")
	require.Equal(t, m.nested, l.nested)
	t.Cleanup(func() { assert.NoError(t, l.Close(), "Close") })
	return l
}

// eachMode runs f as a subtest per mode.
func eachMode(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

func pair(t testing.TB) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err, "socketpair")
	t.Cleanup(func() {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
	})
	return fds[0], fds[1]
}

func write1(t testing.TB, fd int) {
	t.Helper()
	_, err := unix.Write(fd, []byte{1})
	require.NoError(t, err, "write")
}

func drainFD(fd int) {
	var buf [512]byte
	for {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

// runUntil drives l with RunOnce(true), kept awake by a ticking timer,
// until cond holds.
func runUntil(t testing.TB, l *Loop, cond func() bool) {
	t.Helper()
	tick := l.Timer(time.Millisecond, time.Millisecond, func() {})
	defer tick.Stop()
	deadline := time.Now().Add(bound)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "condition not met within %v", bound)
		require.NoError(t, l.RunOnce(true))
	}
}

// fdKinds counts the loop-made fds of the process by kind, from
// /proc/self/fd.
func fdKinds(t testing.TB) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, gone already
		}
		for _, k := range []string{"[eventpoll]", "[eventfd]", "[timerfd]"} {
			if strings.Contains(target, k) {
				kinds[k]++
			}
		}
	}
	return kinds
}

func fdTarget(fd int) string {
	s, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return s
}

// TestFDs: with one poller a loop holds one epoll fd, one eventfd and one
// timerfd; nested, two gnet pollers (two epoll fds and two eventfds) and
// one timerfd. Close releases them all, RunOnce leaks none, and the poller
// fd read by reflection really is an epoll fd.
func TestFDs(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		pollers := 1
		if m.nested {
			pollers = 2
		}
		before := fdKinds(t)
		l, err := m.open()
		require.NoError(t, err)
		assert.Contains(t, fdTarget(l.regFD), "[eventpoll]", "pollerFD must return the epoll fd")
		assert.Contains(t, fdTarget(l.tfd), "[timerfd]")
		assert.Contains(t, fdTarget(l.wakeFD), "[eventfd]")
		during := fdKinds(t)
		assert.Equal(t, before["[eventpoll]"]+pollers, during["[eventpoll]"], "epoll fds")
		assert.Equal(t, before["[eventfd]"]+pollers, during["[eventfd]"], "eventfds")
		assert.Equal(t, before["[timerfd]"]+1, during["[timerfd]"], "one timerfd per loop")
		first := l.poller
		for range 5 {
			require.NoError(t, l.RunOnce(false)) // nested: each one replaces the running poller
		}
		assert.Equal(t, m.nested && !m.reuse, first != l.poller, "poller replaced")
		assert.Equal(t, during, fdKinds(t), "RunOnce must not leak the pollers it replaces")
		require.NoError(t, l.Close())
		assert.Equal(t, before, fdKinds(t), "Close must release every fd the loop made")
		require.NoError(t, l.Close(), "a second Close is a no-op")
	})
}

// TestDefaultOnePoller: on Linux, New keeps the watched fds on the poller
// that runs.
func TestDefaultOnePoller(t *testing.T) {
	l := newLoop(t)
	assert.False(t, l.nested)
	assert.Same(t, l.poller, l.reg)
	a, _ := pair(t)
	_, err := l.Watch(a, loop.Readable, func(loop.Events) {})
	require.NoError(t, err)
	fdinfo, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(l.regFD))
	require.NoError(t, err)
	assert.Contains(t, string(fdinfo), "tfd: "+padFD(a), "the watched fd is registered on the running poller")
}

// padFD formats fd as /proc/PID/fdinfo lists epoll's targets.
func padFD(fd int) string {
	s := strconv.Itoa(fd)
	for len(s) < 8 {
		s = " " + s
	}
	return s
}

// TestWakeAfterPolling: Polling returns from inside its chores on every
// RunOnce and every Stopped Run, leaving the poller's wake-up flag set. A
// Post from another goroutine must still wake the loop every time: with
// the poller kept and re-woken (one poller, and nested with reuse) and
// with a fresh poller each time (nested).
func TestWakeAfterPolling(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		kept := !m.nested || m.reuse
		first := l.poller
		seen := map[any]bool{first: true}
		check := func() {
			t.Helper()
			if kept {
				assert.Same(t, first, l.poller, "the poller was replaced")
			} else {
				assert.False(t, seen[l.poller], "a poller whose Polling returned was reused")
				seen[l.poller] = true
			}
		}
		for i := range 200 {
			var ran atomic.Bool
			go func() { _ = l.Post(func() { ran.Store(true) }) }()
			deadline := time.Now().Add(bound)
			for !ran.Load() {
				require.True(t, time.Now().Before(deadline), "post #%d never ran", i)
				require.NoError(t, l.RunOnce(i%2 == 0))
			}
			check()
		}
		for range 20 {
			done := make(chan error, 1)
			go func() { done <- l.Run() }()
			ran := make(chan struct{})
			require.NoError(t, l.Post(func() { close(ran) }))
			<-ran
			l.Stop()
			require.NoError(t, <-done)
			check()
		}
		// RunOnce(true) with a Post that comes while it blocks.
		for range 20 {
			var ran atomic.Bool
			go func() {
				time.Sleep(time.Millisecond)
				_ = l.Post(func() { ran.Store(true) })
			}()
			deadline := time.Now().Add(bound)
			for !ran.Load() {
				require.True(t, time.Now().Before(deadline))
				require.NoError(t, l.RunOnce(true))
			}
		}
	})
}

// TestEdgeSurvivesRunOnce: the watched fds live in the inner poller, so
// replacing the outer one on every RunOnce neither re-reports an edge that
// was delivered nor loses one that was not.
func TestEdgeSurvivesRunOnce(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		a, b := pair(t)
		var n atomic.Int32
		w, err := l.WatchEdge(a, loop.Readable, func(loop.Events) { n.Add(1) })
		require.NoError(t, err)
		write1(t, b)
		runUntil(t, l, func() bool { return n.Load() == 1 })
		for range 50 {
			require.NoError(t, l.RunOnce(false))
		}
		assert.Equal(t, int32(1), n.Load(), "an undrained edge fd fired again after poller swaps")
		write1(t, b)
		runUntil(t, l, func() bool { return n.Load() == 2 })
		require.NoError(t, w.Stop())
	})
}

// TestCombinedWatchers: read and write interest of several watchers on one
// fd share the one registration the poller allows; each watcher gets only
// its own events, and stopping one leaves the others armed.
func TestCombinedWatchers(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		a, b := pair(t)
		var r, w, r2 atomic.Int32
		var (
			wr  loop.IOWatcher
			err error
		)
		wr, err = l.Watch(a, loop.Readable, func(ev loop.Events) {
			assert.Equal(t, wr.Events(), ev, "events beyond the watcher's own")
			r.Add(1)
		})
		require.NoError(t, err)
		ww, err := l.Watch(a, loop.Writable, func(ev loop.Events) {
			assert.Equal(t, loop.Writable, ev)
			w.Add(1)
		})
		require.NoError(t, err)
		wr2, err := l.Watch(a, loop.Readable, func(loop.Events) { r2.Add(1) })
		require.NoError(t, err)
		assert.Equal(t, loop.Readable|loop.Writable, l.fds[a].kernel)

		runUntil(t, l, func() bool { return w.Load() > 0 })
		assert.Zero(t, r.Load()+r2.Load(), "readable watchers fired with nothing to read")
		write1(t, b)
		runUntil(t, l, func() bool { return r.Load() > 0 && r2.Load() > 0 })

		require.NoError(t, ww.Stop())
		assert.Equal(t, loop.Readable, l.fds[a].kernel, "write interest left after its watcher stopped")
		require.NoError(t, wr.Modify(loop.Writable), "Modify to write-only (Delete + AddWrite)")
		assert.Equal(t, loop.Readable|loop.Writable, l.fds[a].kernel)
		require.NoError(t, wr2.Stop())
		assert.Equal(t, loop.Writable, l.fds[a].kernel)
		before := r.Load()
		ww2 := w.Load()
		runUntil(t, l, func() bool { return r.Load() > before })
		assert.Equal(t, ww2, w.Load(), "a stopped watcher fired")
		require.NoError(t, wr.Modify(0))
		assert.Equal(t, loop.Events(0), l.fds[a].kernel, "a paused fd stays registered")
		require.NoError(t, wr.Stop())
		assert.Nil(t, l.fds[a], "the fd record outlived its last watcher")
	})
}

// TestMixedTriggers: level and edge watchers cannot share an fd.
func TestMixedTriggers(t *testing.T) {
	l := newLoop(t)
	a, _ := pair(t)
	w, err := l.Watch(a, loop.Readable, func(loop.Events) {})
	require.NoError(t, err)
	_, err = l.WatchEdge(a, loop.Writable, func(loop.Events) {})
	require.ErrorIs(t, err, ErrMixedTriggers)
	assert.Contains(t, err.Error(), "fd "+strconv.Itoa(a))
	require.NoError(t, w.Stop())
	// Once the level watcher is gone, the fd can be watched edge-triggered.
	w, err = l.WatchEdge(a, loop.Writable, func(loop.Events) {})
	require.NoError(t, err)
	_, err = l.Watch(a, loop.Readable, func(loop.Events) {})
	require.ErrorIs(t, err, ErrMixedTriggers)
	require.NoError(t, w.Stop())
}

// TestBadInput: errors of the standard library's kinds, never a panic.
func TestBadInput(t *testing.T) {
	l := newLoop(t)
	a, _ := pair(t)
	_, err := l.Watch(-1, loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, syscall.EBADF)
	_, err = l.Watch(1<<24, loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, syscall.EBADF)
	assert.Less(t, len(l.fds), 1<<20, "the fd table grew for an fd that is not open")
	_, err = l.Watch(a, 0, func(loop.Events) {})
	assert.ErrorIs(t, err, os.ErrInvalid)
	_, err = l.Watch(a, 0x10, func(loop.Events) {})
	assert.ErrorIs(t, err, os.ErrInvalid)
	_, err = l.Watch(a, loop.Readable, nil)
	assert.ErrorIs(t, err, os.ErrInvalid)
	f, err := os.CreateTemp(t.TempDir(), "regular")
	require.NoError(t, err)
	defer f.Close()
	_, err = l.Watch(int(f.Fd()), loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, syscall.EPERM, "epoll refuses regular files")
	assert.NotNil(t, l.Timer(time.Millisecond, 0, nil), "Timer with a nil callback")
	_, err = l.Signal(nil, func(os.Signal) {})
	assert.Error(t, err)
	assert.NoError(t, l.RunOnce(false))
}

// TestFDReuseInBatch: a callback stops another fd's watcher, closes that
// fd and watches a new file on the same number, all in the batch that
// collected the old file's readiness: the new watcher must not get it,
// and must get the new file's own readiness exactly once (edge) or until
// drained (level), whether RunOnce or Run drives the loop.
func TestFDReuseInBatch(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		for _, edge := range []bool{false, true} {
			for _, newReady := range []bool{false, true} {
				for _, run := range []bool{false, true} {
					name := fmt.Sprintf("edge=%v/newReady=%v/run=%v", edge, newReady, run)
					t.Run(name, func(t *testing.T) { fdReuseInBatch(t, m, edge, newReady, run) })
				}
			}
		}
	})
}

func fdReuseInBatch(t *testing.T, m mode, edge, newReady, run bool) {
	l := m.newLoop(t)
	watch := l.Watch
	if edge {
		watch = l.WatchEdge
	}
	for round := range 20 {
		a1, b1 := pair(t)
		a2, b2 := pair(t)
		write1(t, b1)
		write1(t, b2) // both ready: one batch collects both
		var (
			ws       = map[int]loop.IOWatcher{}
			reused   loop.IOWatcher
			got      atomic.Int32
			replaced = false
		)
		cb := func(self int) func(loop.Events) {
			return func(loop.Events) {
				if replaced {
					return
				}
				replaced = true
				other := a2
				if self == a2 {
					other = a1
				}
				require.NoError(t, ws[other].Stop())
				c, cpeer := pair(t) // a new file
				if newReady {
					write1(t, cpeer)
				}
				require.NoError(t, unix.Close(other))
				_, err := unix.FcntlInt(uintptr(c), unix.F_DUPFD_CLOEXEC, other)
				require.NoError(t, err, "dup onto the old number")
				reused, err = watch(other, loop.Readable, func(loop.Events) {
					got.Add(1)
					drainFD(other)
				})
				require.NoError(t, err)
			}
		}
		for _, fd := range []int{a1, a2} {
			w, err := watch(fd, loop.Readable, cb(fd))
			require.NoError(t, err)
			ws[fd] = w
		}
		if run {
			l.Timer(20*time.Millisecond, 0, l.Stop)
			require.NoError(t, l.Run())
		} else {
			for range 4 {
				require.NoError(t, l.RunOnce(false))
			}
		}
		require.True(t, replaced, "round %d: no callback ran", round)
		want := int32(0)
		if newReady {
			want = 1
		}
		assert.Equal(t, want, got.Load(), "round %d: calls of the new file's watcher (0: the old file's event is not its own)", round)
		for _, w := range ws {
			require.NoError(t, w.Stop())
		}
		require.NoError(t, reused.Stop())
	}
}

// TestRePostDoesNotStarve: a function that keeps re-posting itself leaves
// room for I/O and timers (gnet's chores would otherwise run it forever).
func TestRePostDoesNotStarve(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		a, b := pair(t)
		var io, timer atomic.Bool
		w, err := l.Watch(a, loop.Readable, func(loop.Events) { io.Store(true) })
		require.NoError(t, err)
		l.Timer(time.Millisecond, 0, func() { timer.Store(true) })
		var spin func()
		stop := false
		spin = func() {
			if !stop {
				_ = l.Post(spin)
			}
		}
		require.NoError(t, l.Post(spin))
		write1(t, b)
		done := make(chan error, 1)
		go func() { done <- l.Run() }()
		deadline := time.Now().Add(bound)
		for !io.Load() || !timer.Load() {
			require.True(t, time.Now().Before(deadline), "re-posting starved I/O (%v) or timers (%v)", io.Load(), timer.Load())
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, l.Post(func() { stop = true }))
		l.Stop()
		require.NoError(t, <-done)
		require.NoError(t, w.Stop())
	})
}

// TestTimerfdRearm: the timerfd is re-armed only when the earliest
// deadline moves earlier, not once per timer.
func TestTimerfdRearm(t *testing.T) {
	l := newLoop(t)
	src := l.tsrc.(*timerfdSource)
	before := src.sets
	fired := 0
	for i := range 10_000 {
		l.Timer(time.Millisecond+time.Duration(i)*time.Microsecond, 0, func() { fired++ })
	}
	assert.LessOrEqual(t, src.sets-before, 2, "timerfd_settime per timer added in deadline order")
	runUntil(t, l, func() bool { return fired == 10_000 })
	// An earlier deadline does re-arm, also through Reset.
	var late, early atomic.Bool
	l.Timer(time.Hour, 0, func() { late.Store(true) })
	tm := l.Timer(time.Hour, 0, func() { early.Store(true) })
	tm.Reset(2*time.Millisecond, 0)
	start := time.Now()
	deadline := start.Add(bound)
	for !early.Load() {
		require.True(t, time.Now().Before(deadline))
		require.NoError(t, l.RunOnce(true))
	}
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Millisecond, "a timer fired early")
	assert.False(t, late.Load())
}

// TestPanicInCallback: a panicking callback unwinds through Polling; the
// loop is usable afterwards with a fresh poller.
func TestPanicInCallback(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		require.NoError(t, l.Post(func() { panic("boom") }))
		assert.PanicsWithValue(t, "boom", func() { _ = l.Run() })
		ran := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- l.Run() }()
		go func() { _ = l.Post(func() { close(ran) }) }()
		select {
		case <-ran:
		case <-time.After(bound):
			t.Fatal("the loop did not run a Post after a panic")
		}
		l.Stop()
		require.NoError(t, <-done)
	})
}

// TestRunNested: Run from a callback is an error, not a deadlock.
func TestRunNested(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		var err error
		require.NoError(t, l.Post(func() { err = l.RunOnce(false) }))
		require.NoError(t, l.RunOnce(false))
		assert.Error(t, err)
	})
}

// TestNoAllocPerEvent: dispatching readiness (the scheduler's steady
// state: edge watchers registered once) allocates nothing, from the wait
// to the callbacks, with a running loop.
func TestNoAllocPerEvent(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	eachMode(t, func(t *testing.T, m mode) {
		l := m.newLoop(t)
		const n = 16
		var (
			bs    []int
			fired atomic.Int64
		)
		for range n {
			a, b := pair(t)
			bs = append(bs, b)
			_, err := l.WatchEdge(a, loop.Readable, func(ev loop.Events) {
				drainFD(a)
				fired.Add(1)
			})
			require.NoError(t, err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Run() }()
		defer func() {
			l.Stop()
			require.NoError(t, <-done)
		}()
		one := []byte{1}
		var want int64
		round := func() {
			want += n
			for _, b := range bs {
				_, _ = unix.Write(b, one)
			}
			deadline := time.Now().Add(bound)
			for fired.Load() < want && time.Now().Before(deadline) {
				runtime.Gosched()
			}
		}
		round() // Polling's own event list
		allocs := testing.AllocsPerRun(200, round)
		require.Equal(t, want, fired.Load(), "events lost")
		assert.Zero(t, allocs, "allocations per round of %d events", n)
	})
}

func TestRegistered(t *testing.T) {
	assert.Contains(t, loop.Names(), Name)
	l, err := loop.Open(Name)
	require.NoError(t, err)
	assert.Equal(t, Name, l.Name())
	_, ok := l.(loop.EdgeWatcher)
	assert.True(t, ok, "gnet implements loop.EdgeWatcher")
	assert.Empty(t, loop.UnsupportedOf(l))
	require.NoError(t, l.Close())
}

// TestConformanceNested runs the shared suite with two pollers (the
// BSDs' way), the running one replaced or re-woken after Polling returns
// (the default, one poller, runs in TestConformance and package
// conformance), so that every way stays correct.
func TestConformanceNested(t *testing.T) {
	for _, m := range modes[1:] {
		t.Run(m.name, func(t *testing.T) {
			conformance.TestLoop(t, func() (loop.Loop, error) { return m.open() })
		})
	}
}

// TestQuietWatcherSkipsYield: after the callbacks of a loop.Quieter-quiet
// watcher the loop does not yield; after an ordinary watcher's it does,
// once per fd's callbacks.
func TestQuietWatcherSkipsYield(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		for _, quiet := range []bool{false, true} {
			t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
				l := m.newLoop(t)
				a, b := pair(t)
				got := make(chan struct{}, 1)
				w, err := l.Watch(a, loop.Readable, func(loop.Events) {
					drainFD(a)
					got <- struct{}{}
				})
				require.NoError(t, err)
				q, ok := w.(loop.Quieter)
				require.True(t, ok, "gnet's watchers take the hint")
				if quiet {
					q.Quiet()
				}
				done := make(chan error, 1)
				go func() { done <- l.Run() }()
				const n = 50
				for range n {
					write1(t, b)
					select {
					case <-got:
					case <-time.After(bound):
						t.Fatal("no callback")
					}
				}
				yields := make(chan int, 1)
				require.NoError(t, l.Post(func() { yields <- l.yields }))
				y := <-yields
				l.Stop()
				require.NoError(t, <-done)
				require.NoError(t, w.Stop())
				if quiet {
					assert.Zero(t, y, "yields after a quiet watcher's callbacks")
				} else {
					// The post that reads the count may run before the
					// last callbacks' yield (nested pollers).
					assert.GreaterOrEqual(t, y, n-1, "a yield after each readiness's callbacks")
				}
			})
		}
	})
}
