//go:build unix

package conformance

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/loop"
)

var closeCases = []loopCase{
	{"NoGoroutineLeak", testCloseNoGoroutineLeak},
	{"NoFDLeak", testCloseNoFDLeak},
	{"Idempotent", testCloseIdempotent},
	{"RunsQueuedPosts", testCloseRunsQueuedPosts},
	{"FromCallback", testCloseFromCallback},
	{"AfterClose", testCloseAfterClose},
	{"LeavesFDsOpen", testCloseLeavesFDsOpen},
}

// exercise uses every part of l that it supports — watchers (level and
// edge) on the given socket pairs, timers, posts from other goroutines and
// a signal watcher — with the loop running, then stops Run and leaves the
// watchers and timers armed, for Close to release.
func exercise(t *testing.T, l loop.Loop, pairs []*fdPair) {
	t.Helper()
	var fired atomic.Int64
	l.Timer(time.Millisecond, time.Millisecond, func() { fired.Add(1) })
	l.Timer(time.Hour, 0, func() {})
	if loop.Supports(l, loop.CapWatch) {
		ew, edge := l.(loop.EdgeWatcher)
		for i, p := range pairs {
			watch, ev := l.Watch, loop.Readable
			if edge && i%2 == 1 {
				watch, ev = ew.WatchEdge, loop.Readable|loop.Writable
			}
			_, err := watch(p.a, ev, func(ev loop.Events) {
				fired.Add(1)
				if ev&loop.Readable != 0 {
					drainQuiet(p.a)
				}
			})
			require.NoError(t, err, "Watch")
			writeBytes(t, p.b, 1)
		}
	}
	{
		guard := notifyGuard(t)
		_, err := l.Signal(syscall.SIGUSR1, func(os.Signal) { fired.Add(1) })
		require.NoError(t, err, "Signal")
		raise(t, guard, syscall.SIGUSR1)
	}
	r := startRun(t, l)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = l.Post(func() { fired.Add(1) })
			}
		}()
	}
	wg.Wait()
	for _, p := range pairs {
		writeBytes(t, p.b, 1)
	}
	time.Sleep(10 * time.Millisecond)
	do(t, l, func() {})
	r.stop(t)
	require.Positive(t, fired.Load())
}

// testCloseNoGoroutineLeak: after Close no goroutine of the loop remains.
func testCloseNoGoroutineLeak(t *testing.T, open opener) {
	// A first loop absorbs one-time, process-wide set-up (a runtime poller,
	// the os/signal goroutine) that is not the loop's to release.
	warm, err := open()
	require.NoError(t, err, "open")
	require.NoError(t, warm.Close(), "Close")

	ignore := goleak.IgnoreCurrent()
	pairs := []*fdPair{socketpair(t), socketpair(t), socketpair(t), socketpair(t)}
	l, closeLoop := openLoop(t, open)
	exercise(t, l, pairs)
	require.NoError(t, closeLoop.Close(), "Close")
	goleak.VerifyNone(t, ignore)
}

// testCloseNoFDLeak: after Close no fd the loop opened stays open.
func testCloseNoFDLeak(t *testing.T, open opener) {
	warm, err := open()
	require.NoError(t, err, "open")
	require.NoError(t, warm.Close(), "Close")
	// The runtime's own poller fds are created on first use, once.
	r, w, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, w.Close())

	pairs := []*fdPair{socketpair(t), socketpair(t), socketpair(t), socketpair(t)}
	before, ok := countFDs()
	l, closeLoop := openLoop(t, open)
	exercise(t, l, pairs)
	during, _ := countFDs()
	require.NoError(t, closeLoop.Close(), "Close")
	if !ok {
		t.Logf("fd count not checked: /proc/self/fd does not exist on %s; goroutines and watchers were still exercised", runtime.GOOS)
		return
	}
	deadline := time.Now().Add(bound)
	after := 0
	for {
		after, _ = countFDs()
		if after <= before || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("open fds: %d before open, %d while running, %d after Close", before, during, after)
	assert.LessOrEqual(t, after, before, "fds left open after Close:\n%s", listFDs())
}

// testCloseIdempotent: a second Close is harmless: nil or a clear error.
func testCloseIdempotent(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	require.NoError(t, closeLoop.Close(), "Close")
	err := l.Close()
	if err != nil {
		assert.NotEmpty(t, err.Error(), "a second Close may fail, but with a clear error")
		t.Logf("second Close: %v", err)
	}
}

// testCloseRunsQueuedPosts: functions posted before Close run exactly once,
// by the time Close returns.
func testCloseRunsQueuedPosts(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	const posters, posts = 4, 250
	var runs [posters * posts]atomic.Int32
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range posts {
				if err := l.Post(func() { runs[p*posts+i].Add(1) }); err != nil {
					t.Errorf("Post: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, closeLoop.Close(), "Close")
	for i := range runs {
		if n := runs[i].Load(); n != 1 {
			t.Fatalf("posted function #%d ran %d times by the end of Close, want exactly once", i, n)
		}
	}
}

// testCloseFromCallback: Close from a callback on the loop goroutine makes
// Run return.
func testCloseFromCallback(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	if loop.Supports(l, loop.CapWatch) {
		p := socketpair(t)
		writeBytes(t, p.b, 1)
		_, err := l.Watch(p.a, loop.Readable, func(loop.Events) {})
		require.NoError(t, err, "Watch")
	}
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	do(t, l, func() {})
	closed := make(chan error, 1)
	require.NoError(t, l.Post(func() { closed <- closeLoop.CloseInline() }))
	if err := wait(t, closed, "Close from a callback"); err != nil {
		// Do not leave Run running into the next case.
		l.Stop()
		select {
		case <-done:
			_ = closeBounded(l)
		case <-time.After(bound):
		}
		t.Fatalf("Close from a callback on the loop goroutine (allowed by the contract): %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			assert.ErrorIs(t, err, loop.ErrClosed, "Run after Close from a callback must return nil or loop.ErrClosed")
		}
	case <-time.After(bound):
		l.Stop()
		t.Fatalf("Run did not return within %v of Close from a callback", bound)
	}
}

// testCloseAfterClose: every operation on a closed loop fails with
// loop.ErrClosed (Timer, which has no error, must not panic); Run and
// RunOnce return at once.
func testCloseAfterClose(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	var p *fdPair
	if loop.Supports(l, loop.CapWatch) {
		p = socketpair(t)
	}
	require.NoError(t, closeLoop.Close(), "Close")

	assert.ErrorIs(t, l.Post(func() {}), loop.ErrClosed, "Post after Close")
	if p != nil {
		w, err := l.Watch(p.a, loop.Readable, func(loop.Events) {})
		assert.ErrorIs(t, err, loop.ErrClosed, "Watch after Close")
		assert.Nil(t, w, "Watch after Close returned a watcher")
		if ew, ok := l.(loop.EdgeWatcher); ok {
			_, err := ew.WatchEdge(p.a, loop.Readable, func(loop.Events) {})
			assert.ErrorIs(t, err, loop.ErrClosed, "WatchEdge after Close")
		}
	}
	{
		_, err := l.Signal(syscall.SIGUSR1, func(os.Signal) {})
		assert.ErrorIs(t, err, loop.ErrClosed, "Signal after Close")
	}
	tm := l.Timer(time.Millisecond, 0, func() {})
	if tm != nil {
		tm.Stop()
	}
	for _, run := range []struct {
		what string
		fn   func() error
	}{
		{"RunOnce(false)", func() error { return l.RunOnce(false) }},
		{"RunOnce(true)", func() error { return l.RunOnce(true) }},
		{"Run", l.Run},
	} {
		done := make(chan error, 1)
		go func() { done <- run.fn() }()
		err := wait(t, done, run.what+" on a closed loop to return")
		assert.ErrorIs(t, err, loop.ErrClosed, "%s after Close", run.what)
	}
	l.Stop() // harmless
}

// testCloseLeavesFDsOpen: Close stops the watchers but neither closes nor
// reads the caller's fds; stopping a watcher after Close is harmless.
func testCloseLeavesFDsOpen(t *testing.T, open opener) {
	l, closeLoop := openLoop(t, open)
	needWatch(t, l)
	p := socketpair(t)
	calls := 0
	w, err := l.Watch(p.a, loop.Readable, func(loop.Events) { calls++ })
	require.NoError(t, err, "Watch")
	writeBytes(t, p.b, 1)
	runUntil(t, l, "Readable", func() bool { return calls > 0 })
	require.NoError(t, closeLoop.Close(), "Close")
	require.True(t, fdOpen(p.a), "Close closed the caller's fd")
	writeBytes(t, p.b, 2)
	assert.Equal(t, 3, drain(t, p.a), "the caller's data must still be there after Close")
	assert.NoError(t, w.Stop(), "Stop of a watcher after Close (Stop is idempotent)")
}
