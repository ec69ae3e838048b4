//go:build unix

package conformance

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var signalCases = []loopCase{
	{"Delivered", testSignalDelivered},
	{"TwoSignals", testSignalTwo},
	{"Stop", testSignalStop},
	{"StopCollected", testSignalStopCollected},
	{"BadArgs", testSignalBadArgs},
}

// notifyGuard keeps SIGUSR1 and SIGUSR2 notified on a channel of the case's
// own while it runs, so a loop that drops a signal cannot let its default
// action kill the test binary; the channel also tells when a signal sent
// to self has arrived.
func notifyGuard(t testing.TB) <-chan os.Signal {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	t.Cleanup(func() { signal.Stop(ch) })
	return ch
}

// raise sends sig to the process and waits until the guard has seen it.
func raise(t testing.TB, guard <-chan os.Signal, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, syscall.Kill(os.Getpid(), sig), "kill")
	deadline := time.After(bound)
	for {
		select {
		case s := <-guard:
			if s == sig {
				return
			}
		case <-deadline:
			t.Fatalf("%v sent to self did not arrive within %v", sig, bound)
		}
	}
}

// testSignalDelivered: a signal is a callback on the loop goroutine.
func testSignalDelivered(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	guard := notifyGuard(t)
	me := goid()
	var (
		got  []os.Signal
		gids []uint64
	)
	w, err := l.Signal(syscall.SIGUSR1, func(s os.Signal) {
		got = append(got, s)
		gids = append(gids, goid())
	})
	require.NoError(t, err, "Signal")
	require.NotNil(t, w, "Signal returned a nil watcher and no error")
	raise(t, guard, syscall.SIGUSR1)
	runUntil(t, l, "the SIGUSR1 callback", func() bool { return len(got) > 0 })
	assert.Equal(t, syscall.SIGUSR1, got[0])
	assert.Equal(t, me, gids[0], "the signal callback must run on the goroutine running the loop")
	require.NoError(t, w.Stop())
}

// testSignalTwo: each watcher gets its own signal only.
func testSignalTwo(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	guard := notifyGuard(t)
	var got1, got2 int
	w1, err := l.Signal(syscall.SIGUSR1, func(os.Signal) { got1++ })
	require.NoError(t, err, "Signal(SIGUSR1)")
	w2, err := l.Signal(syscall.SIGUSR2, func(os.Signal) { got2++ })
	require.NoError(t, err, "Signal(SIGUSR2)")
	raise(t, guard, syscall.SIGUSR2)
	runUntil(t, l, "the SIGUSR2 callback", func() bool { return got2 > 0 })
	runFor(t, l, quiet)
	assert.Zero(t, got1, "the SIGUSR1 watcher fired for SIGUSR2")
	raise(t, guard, syscall.SIGUSR1)
	runUntil(t, l, "the SIGUSR1 callback", func() bool { return got1 > 0 })
	require.NoError(t, w1.Stop())
	require.NoError(t, w2.Stop())
}

// testSignalStop: a stopped signal watcher fires no more; Stop is
// idempotent.
func testSignalStop(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	guard := notifyGuard(t)
	got := 0
	w, err := l.Signal(syscall.SIGUSR2, func(os.Signal) { got++ })
	require.NoError(t, err, "Signal")
	require.NoError(t, w.Stop(), "Stop")
	assert.NoError(t, w.Stop(), "a second Stop must be a no-op")
	raise(t, guard, syscall.SIGUSR2)
	runFor(t, l, quiet)
	assert.Zero(t, got, "a stopped signal watcher fired")
}

// testSignalStopCollected: a signal that arrived before Stop, but whose
// callback has not run yet, is not delivered after Stop.
func testSignalStopCollected(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	guard := notifyGuard(t)
	got := 0
	w, err := l.Signal(syscall.SIGUSR1, func(os.Signal) { got++ })
	require.NoError(t, err, "Signal")
	raise(t, guard, syscall.SIGUSR1)
	time.Sleep(10 * time.Millisecond) // let the backend queue the delivery
	require.NoError(t, w.Stop(), "Stop")
	runFor(t, l, quiet)
	assert.Zero(t, got, "a signal watcher fired after Stop")
}

// testSignalBadArgs: a nil signal or callback is an error, not a panic.
func testSignalBadArgs(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	w, err := l.Signal(nil, func(os.Signal) {})
	assert.Error(t, err, "Signal(nil, cb)")
	if err == nil && w != nil {
		_ = w.Stop()
	}
	w, err = l.Signal(syscall.SIGUSR1, nil)
	assert.Error(t, err, "Signal(sig, nil)")
	if err == nil && w != nil {
		_ = w.Stop()
	}
}
