package netpoll_test

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/netpoll"
	"github.com/evhub/evhub/loop"
)

// TestWatchHoldsNoGoroutineNorFD: on Linux a watched fd is an item of the
// loop's epoll instance, with no waiter goroutine and no duplicate fd.
func TestWatchHoldsNoGoroutineNorFD(t *testing.T) {
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	const n = 200
	fds := make([]int, n)
	for i := range fds {
		fds[i], _ = socketpair(t)
	}
	goroutines := runtime.NumGoroutine()
	before, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	ws := make([]loop.IOWatcher, n)
	for i, fd := range fds {
		ws[i], err = l.Watch(fd, loop.Readable|loop.Writable, func(loop.Events) {})
		require.NoError(t, err)
	}
	after, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	assert.Len(t, after, len(before), "watching %d fds opened descriptors", n)
	assert.Less(t, runtime.NumGoroutine()-goroutines, 5, "watching %d fds started goroutines", n)
	for _, w := range ws {
		require.NoError(t, w.Stop())
	}
}

// TestPausedWatcherIgnoresHangup: epoll reports a hang-up whatever was
// asked; a paused watcher must not see it (nor make the loop spin on it),
// and sees it as readable once re-armed.
func TestPausedWatcherIgnoresHangup(t *testing.T) {
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	a, b := socketpair(t)
	fired := 0
	w, err := l.Watch(a, loop.Readable, func(loop.Events) { fired++ })
	require.NoError(t, err)
	defer w.Stop()
	require.NoError(t, w.Modify(0))
	require.NoError(t, unix.Shutdown(b, unix.SHUT_RDWR))
	iterations := 0
	tick := l.Timer(time.Millisecond, time.Millisecond, func() { iterations++ })
	defer tick.Stop()
	for iterations < 20 {
		require.NoError(t, l.RunOnce(true))
	}
	assert.Zero(t, fired, "a paused watcher fired on the peer's hang-up")
	require.NoError(t, w.Modify(loop.Readable))
	runUntil(t, l, func() bool { return fired > 0 })
}

// TestStopInBatchDropsCollectedEvent: two fds ready in one batch, each
// callback stops the other's watcher: exactly one callback runs.
func TestStopInBatchDropsCollectedEvent(t *testing.T) {
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	a1, b1 := socketpair(t)
	a2, b2 := socketpair(t)
	var w1, w2 loop.IOWatcher
	ran := 0
	w1, err = l.Watch(a1, loop.Readable, func(loop.Events) { ran++; require.NoError(t, w2.Stop()); require.NoError(t, w1.Stop()) })
	require.NoError(t, err)
	w2, err = l.Watch(a2, loop.Readable, func(loop.Events) { ran++; require.NoError(t, w1.Stop()); require.NoError(t, w2.Stop()) })
	require.NoError(t, err)
	_, err = unix.Write(b1, []byte{1})
	require.NoError(t, err)
	_, err = unix.Write(b2, []byte{1})
	require.NoError(t, err)
	runUntil(t, l, func() bool { return ran > 0 })
	for range 10 {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Equal(t, 1, ran, "a watcher stopped earlier in the batch still fired")
}
