//go:build linux && uring

package uring

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// onLoop runs fn on l's goroutine and waits for it.
func onLoop(t *testing.T, l *Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	require.NoError(t, l.Post(func() { fn(); close(done) }))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("posted function did not run")
	}
}

// TestRunOnThread: a fresh loop run by RunOnThread gets a ring bound to
// its thread (SINGLE_ISSUER|DEFER_TASKRUN), receives with multishot
// requests, keeps every byte in order through Stop, timers and posts
// work, and it is closed on its thread when Run ends (a later Close is a
// no-op, a Post fails with ErrClosed).
func TestRunOnThread(t *testing.T) {
	l, err := New()
	require.NoError(t, err)
	a, b := pair(t)
	ran := make(chan error, 1)
	go func() { ran <- l.RunOnThread() }()

	var flags uint32
	onLoop(t, l, func() { flags = l.r.flags })
	require.NotZero(t, flags&setupSingle, "SINGLE_ISSUER")
	require.NotZero(t, flags&setupDefer, "DEFER_TASKRUN")

	got := make(chan []byte, 64)
	var w loop.Watcher
	onLoop(t, l, func() {
		w, err = l.Recv(a, func(p []byte, err error) {
			if err == nil {
				got <- append([]byte(nil), p...)
			}
		})
	})
	require.NoError(t, err)
	var want, have []byte
	for i := range 20 {
		msg := []byte{byte('a' + i), byte('a' + i)}
		want = append(want, msg...)
		_, err := unix.Write(b, msg)
		require.NoError(t, err)
		if i%5 == 4 {
			for len(have) < len(want) {
				select {
				case p := <-got:
					have = append(have, p...)
				case <-time.After(10 * time.Second):
					t.Fatalf("received %q of %q", have, want)
				}
			}
		}
	}
	require.Equal(t, string(want), string(have))

	fired := make(chan struct{})
	onLoop(t, l, func() { l.Timer(time.Millisecond, 0, func() { close(fired) }) })
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("timer did not fire")
	}

	// Bytes sent before Stop are delivered by Stop, none lost.
	_, err = unix.Write(b, []byte("tail"))
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	onLoop(t, l, func() { require.NoError(t, w.Stop()) })
	var tail []byte
	for len(got) > 0 {
		tail = append(tail, <-got...)
	}
	if len(tail) < 4 {
		n, _ := unix.Read(a, make([]byte, 16))
		assert.Equal(t, 4-len(tail), n, "bytes neither delivered nor in the socket")
	} else {
		assert.Equal(t, "tail", string(tail))
	}

	l.Stop()
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("RunOnThread did not return after Stop")
	}
	require.NoError(t, l.Close(), "Close after RunOnThread is a no-op")
	require.ErrorIs(t, l.Post(func() {}), loop.ErrClosed)
}

// TestRunOnThreadUsedLoopRunsUnbound: a loop that has been given a
// request keeps its ring (the request may be in the kernel) and runs
// unbound.
func TestRunOnThreadUsedLoopRunsUnbound(t *testing.T) {
	l, err := New()
	require.NoError(t, err)
	a, _ := pair(t)
	w, err := l.Watch(a, loop.Readable, func(loop.Events) {})
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false)) // the poll request goes out
	require.NoError(t, w.Stop())
	ran := make(chan error, 1)
	go func() { ran <- l.RunOnThread() }()
	var bound bool
	var flags uint32
	onLoop(t, l, func() { bound, flags = l.bound, l.r.flags })
	assert.False(t, bound)
	assert.Zero(t, flags&setupSingle)
	l.Stop()
	require.NoError(t, <-ran)
	require.ErrorIs(t, l.Post(func() {}), loop.ErrClosed)
}

// TestRunOnThreadClosedLoop: RunOnThread on a closed loop is Run's error.
func TestRunOnThreadClosedLoop(t *testing.T) {
	l, err := New()
	require.NoError(t, err)
	require.NoError(t, l.Close())
	err = l.RunOnThread()
	require.True(t, errors.Is(err, loop.ErrClosed), "%v", err)
}
