//go:build cev

package cev_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/cev"
	"github.com/evhub/evhub/backends/cev/internal/ctest"
	"github.com/evhub/evhub/loop"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func newLoop(t testing.TB) *cev.Loop {
	t.Helper()
	l, err := cev.New()
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// pipe returns a non-blocking pipe closed at the end of the test.
func pipe(t testing.TB) (r, w int) {
	t.Helper()
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

// runUntil runs blocking iterations until cond holds, failing after limit
// iterations.
func runUntil(t *testing.T, l loop.Loop, limit int, cond func() bool) {
	t.Helper()
	for i := 0; i < limit && !cond(); i++ {
		require.NoError(t, l.RunOnce(true))
	}
	require.True(t, cond(), "condition not reached in %d iterations", limit)
}

func TestRegistered(t *testing.T) {
	assert.Contains(t, loop.Names(), "cev")
	l, err := loop.Open("cev")
	require.NoError(t, err)
	assert.Equal(t, "cev", l.Name())
	_, isEdge := l.(loop.EdgeWatcher)
	assert.False(t, isEdge, "libev has no edge-triggered mode")
	assert.Empty(t, loop.UnsupportedOf(l))
	require.NoError(t, l.Close())
}

func TestCloseReleasesFDs(t *testing.T) {
	before := countFDs(t)
	for i := 0; i < 3; i++ {
		l, err := cev.New()
		require.NoError(t, err)
		assert.Greater(t, countFDs(t), before, "the loop holds its epoll fd and eventfd")
		r, _ := pipe(t)
		_, err = l.Watch(r, loop.Readable, func(loop.Events) {})
		require.NoError(t, err)
		l.Timer(time.Hour, 0, func() {})
		_, err = l.Signal(syscall.SIGUSR2, func(os.Signal) {})
		require.NoError(t, err)
		require.NoError(t, l.Post(func() {}))
		require.NoError(t, l.RunOnce(false))
		require.NoError(t, l.Close())
		require.NoError(t, l.Close(), "Close is idempotent")
	}
	// The pipes are closed by cleanup; count only the loops' fds.
	assert.Equal(t, before+3*2, countFDs(t))
}

func TestPostFIFOAndWake(t *testing.T) {
	l := newLoop(t)
	const posters, each = 4, 500
	var got [posters][]int
	var wg sync.WaitGroup
	for p := 0; p < posters; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				require.NoError(t, l.Post(func() { got[p] = append(got[p], i) }))
				if i%50 == 0 {
					time.Sleep(100 * time.Microsecond) // let the loop block and be woken
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); _ = l.Post(func() { l.Stop() }); close(done) }()
	require.NoError(t, l.Run())
	<-done
	for p := range got {
		require.Len(t, got[p], each)
		for i, v := range got[p] {
			require.Equal(t, i, v)
		}
	}
}

func TestPostAfterClose(t *testing.T) {
	l, err := cev.New()
	require.NoError(t, err)
	ran := false
	require.NoError(t, l.Post(func() { ran = true }))
	require.NoError(t, l.Close())
	assert.True(t, ran, "Close runs what was posted before it")
	assert.ErrorIs(t, l.Post(func() {}), loop.ErrClosed)
	assert.ErrorIs(t, l.Run(), loop.ErrClosed)
	assert.ErrorIs(t, l.RunOnce(false), loop.ErrClosed)
	_, err = l.Watch(0, loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, loop.ErrClosed)
	_, err = l.Signal(syscall.SIGUSR1, func(os.Signal) {})
	assert.ErrorIs(t, err, loop.ErrClosed)
	assert.Nil(t, l.Raw())
	l.Stop() // must not touch the destroyed loop
}

func TestStopFromAnotherGoroutineAndRunAgain(t *testing.T) {
	l := newLoop(t)
	for i := 0; i < 3; i++ {
		done := make(chan error)
		go func() { done <- l.Run() }()
		time.Sleep(5 * time.Millisecond)
		l.Stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after Stop")
		}
	}
}

func TestWatchLevelTriggered(t *testing.T) {
	l := newLoop(t)
	r, w := pipe(t)
	fired := 0
	var got loop.Events
	wt, err := l.Watch(r, loop.Readable, func(ev loop.Events) { fired++; got = ev })
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false))
	assert.Equal(t, 0, fired)
	_, err = unix.Write(w, []byte("x"))
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, l.RunOnce(true))
	}
	assert.Equal(t, 3, fired, "an undrained fd fires on every iteration")
	assert.Equal(t, loop.Readable, got)

	require.NoError(t, wt.Modify(0))
	assert.Equal(t, loop.Events(0), wt.Events())
	require.NoError(t, l.RunOnce(false))
	assert.Equal(t, 3, fired, "a paused watcher does not fire")
	require.NoError(t, wt.Modify(loop.Readable|loop.Writable))
	require.NoError(t, l.RunOnce(true))
	assert.Equal(t, 4, fired)
	assert.Equal(t, loop.Readable, got, "only what is ready is reported")

	var buf [8]byte
	_, err = unix.Read(r, buf[:])
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false))
	assert.Equal(t, 4, fired, "a drained fd does not fire")
	require.NoError(t, wt.Stop())
	require.NoError(t, wt.Stop(), "Stop is idempotent")
	assert.ErrorIs(t, wt.Modify(loop.Readable), cev.ErrWatcherStopped)
}

// TestPostFromCallbackRunsBeforeNextPoll: what a callback posts runs in
// the same iteration, before libev polls again, so that the reader it
// stands for (a task woken by readiness) drains the fd before a
// level-triggered poll reports it once more. The watcher fires exactly
// once for one byte that the posted function reads.
func TestPostFromCallbackRunsBeforeNextPoll(t *testing.T) {
	l := newLoop(t)
	r, w := pipe(t)
	fired, drained := 0, 0
	_, err := l.Watch(r, loop.Readable, func(loop.Events) {
		fired++
		require.NoError(t, l.Post(func() {
			var buf [8]byte
			if n, _ := unix.Read(r, buf[:]); n > 0 {
				drained += n
			}
		}))
	})
	require.NoError(t, err)
	_, err = unix.Write(w, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(true))
	assert.Equal(t, 1, fired)
	assert.Equal(t, 1, drained, "the post ran in the iteration whose callback made it")
	for range 3 {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Equal(t, 1, fired, "the drained fd fired again")
}

func TestWatchHangUpIsReadiness(t *testing.T) {
	l := newLoop(t)
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(p[0])
	var got loop.Events
	wt, err := l.Watch(p[0], loop.Readable, func(ev loop.Events) { got = ev })
	require.NoError(t, err)
	defer wt.Stop()
	require.NoError(t, unix.Close(p[1]))
	runUntil(t, l, 5, func() bool { return got != 0 })
	assert.Equal(t, loop.Readable, got)
}

func TestWatchBadInput(t *testing.T) {
	l := newLoop(t)
	r, _ := pipe(t)
	closed, _ := pipe(t)
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	unix.Close(p[0])
	unix.Close(p[1])
	for _, fd := range []int{-1, p[0], 1 << 20, 1 << 40} {
		_, err := l.Watch(fd, loop.Readable, func(loop.Events) {})
		require.Error(t, err, "fd %d", fd)
		assert.ErrorIs(t, err, syscall.EBADF, "fd %d", fd)
	}
	_ = closed
	_, err := l.Watch(r, 0, func(loop.Events) {})
	assert.Error(t, err)
	_, err = l.Watch(r, 4, func(loop.Events) {})
	assert.Error(t, err)
	_, err = l.Watch(r, loop.Readable, nil)
	assert.Error(t, err)
	require.NoError(t, l.RunOnce(false), "the loop is intact")
}

// A watcher stopped by an earlier callback of the same iteration never
// runs, even though its event was collected; a watcher started in its place
// on the same fd does not receive the stale event.
func TestStopInSameIteration(t *testing.T) {
	l := newLoop(t)
	r1, w1 := pipe(t)
	r2, w2 := pipe(t)
	_, err := unix.Write(w1, []byte("x"))
	require.NoError(t, err)
	_, err = unix.Write(w2, []byte("x"))
	require.NoError(t, err)
	var a, b loop.IOWatcher
	fa, fb, fresh := 0, 0, 0
	other := func(self loop.IOWatcher) (loop.IOWatcher, int) {
		if self == a {
			return b, r2
		}
		return a, r1
	}
	cb := func(self *loop.IOWatcher, n *int) func(loop.Events) {
		return func(loop.Events) {
			*n++
			o, fd := other(*self)
			if fa+fb == 1 {
				require.NoError(t, o.Stop())
				_, err := l.Watch(fd, loop.Readable, func(loop.Events) { fresh++ })
				require.NoError(t, err)
			}
		}
	}
	a, err = l.Watch(r1, loop.Readable, cb(&a, &fa))
	require.NoError(t, err)
	b, err = l.Watch(r2, loop.Readable, cb(&b, &fb))
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(true))
	assert.Equal(t, 1, fa+fb, "the stopped watcher's collected event was dropped")
	assert.Equal(t, 0, fresh, "the new watcher did not inherit the stale event")
	require.NoError(t, l.RunOnce(true))
	assert.Equal(t, 1, fresh, "the new watcher sees the fd's own readiness")
}

// libev itself: ev_io_stop of a watcher whose event is pending in this
// iteration clears it (verified with two C watchers).
func TestLibevStopClearsPending(t *testing.T) {
	l := newLoop(t)
	_, w1 := pipe(t)
	_, w2 := pipe(t)
	p, err := ctest.StartPair(l.Raw(), w1, w2)
	require.NoError(t, err)
	defer p.Stop()
	require.NoError(t, l.RunOnce(true))
	a, b := p.Fired()
	assert.Equal(t, 1, a+b)
}

func TestFDReuseGetsNoStaleEvents(t *testing.T) {
	l := newLoop(t)
	r, w := pipe(t)
	_, err := unix.Write(w, []byte("x"))
	require.NoError(t, err)
	old := 0
	wt, err := l.Watch(r, loop.Readable, func(loop.Events) { old++ })
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(true))
	require.Equal(t, 1, old)
	// Keep the old pipe's read side alive under another number, so the
	// kernel still has its file in libev's epoll set.
	dup, err := unix.Dup(r)
	require.NoError(t, err)
	defer unix.Close(dup)
	require.NoError(t, wt.Stop())
	require.NoError(t, unix.Close(r))
	var q [2]int
	require.NoError(t, unix.Pipe2(q[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(q[0])
	defer unix.Close(q[1])
	nr := q[0]
	if nr != r {
		nr = q[1]
	}
	require.Equal(t, r, nr, "the kernel reused the fd number")
	fresh := 0
	wt2, err := l.Watch(r, loop.Readable, func(loop.Events) { fresh++ })
	require.NoError(t, err)
	defer wt2.Stop()
	for i := 0; i < 3; i++ {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Equal(t, 1, old)
	assert.Equal(t, 0, fresh, "the reused number got no events from the old file")
}

func TestTimers(t *testing.T) {
	l := newLoop(t)
	start := time.Now()
	var order []int
	var at []time.Duration
	for i, d := range []time.Duration{30, 10, 20, 10} {
		l.Timer(d*time.Millisecond, 0, func() {
			order = append(order, i)
			at = append(at, time.Since(start))
		})
	}
	stopped := l.Timer(5*time.Millisecond, 0, func() { t.Error("stopped timer fired") })
	assert.True(t, stopped.Stop())
	assert.False(t, stopped.Stop())
	runUntil(t, l, 100, func() bool { return len(order) == 4 })
	assert.Equal(t, []int{1, 3, 2, 0}, order)
	want := []time.Duration{10, 10, 20, 30}
	for i := range at {
		assert.GreaterOrEqual(t, at[i], want[i]*time.Millisecond, "timer %d early", i)
	}

	n := 0
	rep := l.Timer(time.Millisecond, 2*time.Millisecond, func() { n++ })
	runUntil(t, l, 100, func() bool { return n == 3 })
	assert.True(t, rep.Reset(time.Hour, 0))
	require.NoError(t, l.RunOnce(false))
	assert.Equal(t, 3, n)
	assert.True(t, rep.Stop())
}

func TestRunOnceNoWaitDoesNotBlock(t *testing.T) {
	l := newLoop(t)
	l.Timer(time.Hour, 0, func() {})
	start := time.Now()
	for i := 0; i < 100; i++ {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Less(t, time.Since(start), time.Second)
}

func TestCloseFromCallback(t *testing.T) {
	l, err := cev.New()
	require.NoError(t, err)
	r, w := pipe(t)
	_, err = unix.Write(w, []byte("x"))
	require.NoError(t, err)
	second := 0
	for i := 0; i < 2; i++ {
		_, err := l.Watch(r, loop.Readable, func(loop.Events) {
			if i == 0 || second > 0 {
				require.NoError(t, l.Close())
			}
			second++
		})
		require.NoError(t, err)
	}
	l.Timer(0, 0, func() { require.NoError(t, l.Close()) })
	require.NoError(t, l.Run(), "Run returns when a callback closes the loop")
	assert.Equal(t, 1, second, "no callback after Close")
	assert.ErrorIs(t, l.Post(func() {}), loop.ErrClosed)
}

func TestReentrantRun(t *testing.T) {
	l := newLoop(t)
	var err error
	require.NoError(t, l.Post(func() { err = l.RunOnce(false) }))
	require.NoError(t, l.RunOnce(true))
	assert.ErrorIs(t, err, cev.ErrReentrant)
}

// A panicking callback unwinds through Go only: it propagates out of Run
// and the loop keeps working.
func TestPanicInCallbacks(t *testing.T) {
	l := newLoop(t)
	r, w := pipe(t)
	_, err := unix.Write(w, []byte("x"))
	require.NoError(t, err)
	fired := 0
	wt, err := l.Watch(r, loop.Readable, func(loop.Events) {
		fired++
		if fired == 1 {
			panic("io boom")
		}
	})
	require.NoError(t, err)
	assert.PanicsWithValue(t, "io boom", func() { _ = l.Run() })
	require.NoError(t, l.RunOnce(true), "the loop works after a panic")
	assert.Equal(t, 2, fired)
	require.NoError(t, wt.Stop())

	l.Timer(0, 0, func() { panic("timer boom") })
	later := false
	l.Timer(time.Millisecond, 0, func() { later = true })
	assert.PanicsWithValue(t, "timer boom", func() { _ = l.Run() })
	runUntil(t, l, 50, func() bool { return later })

	var ran []int
	require.NoError(t, l.Post(func() { ran = append(ran, 1) }))
	require.NoError(t, l.Post(func() { panic("post boom") }))
	require.NoError(t, l.Post(func() { ran = append(ran, 3) }))
	assert.PanicsWithValue(t, "post boom", func() { _ = l.Run() })
	done := false
	require.NoError(t, l.Post(func() { done = true }))
	runUntil(t, l, 10, func() bool { return done })
	assert.Equal(t, []int{1, 3}, ran, "the posts after the panicking one still run")

	// A panic in an io callback of the iteration that also collected the
	// Post wake-up: the post still runs on the next iteration.
	_, err = unix.Write(w, []byte("x"))
	require.NoError(t, err)
	fired = 0
	wt, err = l.Watch(r, loop.Readable, func(loop.Events) {
		if fired++; fired == 1 {
			panic("io boom 2")
		}
	})
	require.NoError(t, err)
	defer wt.Stop()
	posted := false
	require.NoError(t, l.Post(func() { posted = true }))
	assert.PanicsWithValue(t, "io boom 2", func() { _ = l.RunOnce(true) })
	guard := l.Timer(2*time.Second, 0, func() {})
	defer guard.Stop()
	require.NoError(t, wt.Modify(0))
	require.NoError(t, l.RunOnce(true))
	assert.True(t, posted, "the post ran, not the 2 s guard timer")
}

func TestSignalThroughRelay(t *testing.T) {
	l := newLoop(t)
	got := make(chan os.Signal, 1)
	sw, err := l.Signal(syscall.SIGUSR1, func(s os.Signal) { got <- s })
	require.NoError(t, err)
	defer sw.Stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	runUntil(t, l, 100, func() bool { return len(got) == 1 })
	assert.Equal(t, syscall.SIGUSR1, <-got)
}

// Child processes: a pidfd watcher, and exec.Cmd.Wait still gets the
// status (libev's default loop would have reaped it).
func TestChildThroughPidfd(t *testing.T) {
	l := newLoop(t)
	cmd := exec.Command("sh", "-c", "exit 3")
	require.NoError(t, cmd.Start())
	pfd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK)
	require.NoError(t, err)
	defer unix.Close(pfd)
	exited := false
	wt, err := l.Watch(pfd, loop.Readable, func(loop.Events) { exited = true })
	require.NoError(t, err)
	runUntil(t, l, 100, func() bool { return exited })
	require.NoError(t, wt.Stop())
	err = cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Equal(t, 3, ee.ExitCode())
}

// The point of the backend: C code and Go code sharing one libev loop. A C
// ev_timer and a C ev_io run beside a Go timer and a Go watcher; each fires
// for its own source only.
func TestCInterop(t *testing.T) {
	l := newLoop(t)
	goR, goW := pipe(t)
	cR, cW := pipe(t)

	h, err := ctest.Start(l.Raw(), cR, 2*time.Millisecond, 2*time.Millisecond)
	require.NoError(t, err)
	goIO, goBytes, goTicks := 0, 0, 0
	wt, err := l.Watch(goR, loop.Readable, func(loop.Events) {
		goIO++
		var buf [256]byte
		for {
			n, err := unix.Read(goR, buf[:])
			if n <= 0 || err != nil {
				break
			}
			goBytes += n
		}
	})
	require.NoError(t, err)
	tick := l.Timer(3*time.Millisecond, 3*time.Millisecond, func() { goTicks++ })

	// Writers from other goroutines, through Post and directly.
	var wg sync.WaitGroup
	for _, fd := range []int{goW, cW} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				_, err := unix.Write(fd, []byte("0123456789"))
				assert.NoError(t, err)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); _ = l.Post(func() {}) }()
	runUntil(t, l, 10000, func() bool {
		return goBytes == 200 && h.IOBytes() == 200 && goTicks >= 5 && h.TimerFired() >= 5
	})
	wg.Wait()
	assert.Equal(t, 200, goBytes, "Go watcher read only its own pipe")
	assert.Equal(t, 200, h.IOBytes(), "C watcher read only its own pipe")
	assert.Positive(t, goIO)
	assert.Positive(t, h.IOFired())

	// Stopping the Go side leaves the C side running, and the reverse.
	require.NoError(t, wt.Stop())
	tick.Stop()
	c0 := h.TimerFired()
	runUntil(t, l, 100, func() bool { return h.TimerFired() >= c0+3 })
	h.Stop()
	n := 0
	l.Timer(time.Millisecond, time.Millisecond, func() { n++ })
	runUntil(t, l, 100, func() bool { return n >= 3 })
}

// RunOnce(true) returns after an iteration that ran only C watchers.
func TestRunOnceCountsCWatchers(t *testing.T) {
	l := newLoop(t)
	cR, cW := pipe(t)
	h, err := ctest.Start(l.Raw(), cR, time.Hour, 0)
	require.NoError(t, err)
	defer h.Stop()
	go func() {
		time.Sleep(5 * time.Millisecond)
		_, _ = unix.Write(cW, []byte("x"))
	}()
	require.NoError(t, l.RunOnce(true))
	assert.Equal(t, 1, h.IOFired())
}

func TestManyWatchers(t *testing.T) {
	l := newLoop(t)
	const n = 300 // more than one slab chunk, more than the initial record buffer
	var ws []loop.IOWatcher
	fired := make([]int, n)
	for i := 0; i < n; i++ {
		_, w := pipe(t)
		wt, err := l.Watch(w, loop.Writable, func(ev loop.Events) {
			assert.Equal(t, loop.Writable, ev)
			fired[i]++
		})
		require.NoError(t, err)
		ws = append(ws, wt)
	}
	// libev's epoll backend collects 64 events per epoll_wait at first
	// (growing the array when it fills), so it takes a few iterations.
	runUntil(t, l, 10, func() bool {
		for i := range fired {
			if fired[i] == 0 {
				return false
			}
		}
		return true
	})
	for _, w := range ws {
		require.NoError(t, w.Stop())
	}
	before := append([]int(nil), fired...)
	require.NoError(t, l.RunOnce(false))
	require.Equal(t, before, fired, "no stopped watcher fired")
}

// Files epoll refuses (EPERM: regular files) are always ready in libev,
// as in poll(2); they must not abort the process.
func TestWatchRegularFile(t *testing.T) {
	l := newLoop(t)
	f, err := os.CreateTemp(t.TempDir(), "cev")
	require.NoError(t, err)
	defer f.Close()
	var got loop.Events
	wt, err := l.Watch(int(f.Fd()), loop.Readable|loop.Writable, func(ev loop.Events) { got = ev })
	require.NoError(t, err)
	defer wt.Stop()
	runUntil(t, l, 5, func() bool { return got != 0 })
	assert.Equal(t, loop.Readable|loop.Writable, got)
}

// An fd closed while still watched (a caller's bug) is reported as
// readiness on the armed events, so the next syscall fails with EBADF; it
// must not abort the process.
func TestWatchFDClosedWhileWatched(t *testing.T) {
	l := newLoop(t)
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(p[1])
	var got loop.Events
	wt, err := l.Watch(p[0], loop.Readable, func(ev loop.Events) { got = ev })
	require.NoError(t, err)
	require.NoError(t, unix.Close(p[0]))
	runUntil(t, l, 5, func() bool { return got != 0 })
	assert.Equal(t, loop.Readable, got)
	require.NoError(t, wt.Stop())
	require.NoError(t, l.RunOnce(false))
}

// epollFDs lists the process's epoll fds.
func epollFDs(t *testing.T) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	out := map[int]bool{}
	for _, e := range ents {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && link == "anon_inode:[eventpoll]" {
			var fd int
			_, _ = fmt.Sscan(e.Name(), &fd)
			out[fd] = true
		}
	}
	return out
}

// Watching the loop's own epoll fd (epoll_ctl's EINVAL, an assertion in
// libev) is an error, not an abort.
func TestWatchOwnEpollFD(t *testing.T) {
	before := epollFDs(t)
	l := newLoop(t)
	var own []int
	for fd := range epollFDs(t) {
		if !before[fd] {
			own = append(own, fd)
		}
	}
	require.Len(t, own, 1)
	_, err := l.Watch(own[0], loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, syscall.EINVAL)
	require.NoError(t, l.RunOnce(false))
}

// Modify and Stop of watchers whose fd the caller closed too early make
// libev call epoll_ctl on it; the loop reports that as readiness instead.
func TestChangesOnClosedFD(t *testing.T) {
	l := newLoop(t)
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(p[1])
	var ra, rb loop.Events
	a, err := l.Watch(p[0], loop.Readable, func(ev loop.Events) { ra = ev })
	require.NoError(t, err)
	b, err := l.Watch(p[0], loop.Writable, func(ev loop.Events) { rb = ev })
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false)) // registered with epoll
	require.NoError(t, unix.Close(p[0]))
	require.NoError(t, b.Stop()) // a's mask changes: epoll_ctl MOD
	runUntil(t, l, 5, func() bool { return ra != 0 })
	assert.Equal(t, loop.Readable, ra)
	assert.Zero(t, rb)
	ra = 0
	require.NoError(t, a.Modify(loop.Readable)) // restarts the dead watcher
	runUntil(t, l, 5, func() bool { return ra != 0 })
	require.NoError(t, a.Stop())
	require.NoError(t, l.RunOnce(false))
}
