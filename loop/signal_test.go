//go:build unix

package loop_test

import (
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/loop"
)

// fakeLoop stands in for a loop's Post: posted functions queue on a channel
// and the test runs them, as the loop goroutine would.
type fakeLoop struct {
	fns    chan func()
	closed atomic.Bool
}

func newFakeLoop() *fakeLoop { return &fakeLoop{fns: make(chan func(), 64)} }

func (f *fakeLoop) post(fn func()) error {
	if f.closed.Load() {
		return loop.ErrClosed
	}
	f.fns <- fn
	return nil
}

// next waits for the next posted function.
func (f *fakeLoop) next(t *testing.T) func() {
	t.Helper()
	select {
	case fn := <-f.fns:
		return fn
	case <-time.After(5 * time.Second):
		t.Fatal("no function posted within 5s")
		return nil
	}
}

// guard keeps SIGUSR1/SIGUSR2 notified so a stray one cannot kill the test.
func guard(t *testing.T) chan os.Signal {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	t.Cleanup(func() { signal.Stop(ch) })
	return ch
}

func raise(t *testing.T, g chan os.Signal, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, syscall.Kill(os.Getpid(), sig))
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-g:
			if s == sig {
				return
			}
		case <-deadline:
			t.Fatalf("%v did not arrive", sig)
		}
	}
}

func TestSignalRelayDelivers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := guard(t)
	f := newFakeLoop()
	r := loop.NewSignalRelay(f.post)
	var got []os.Signal
	w, err := r.Watch(syscall.SIGUSR1, func(s os.Signal) { got = append(got, s) })
	require.NoError(t, err)
	raise(t, g, syscall.SIGUSR1)
	f.next(t)()
	assert.Equal(t, []os.Signal{syscall.SIGUSR1}, got)
	require.NoError(t, w.Stop())
	r.Close()
}

// TestSignalRelayStopDropsCollected: a delivery already posted but not yet
// run is dropped once the watcher is stopped.
func TestSignalRelayStopDropsCollected(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := guard(t)
	f := newFakeLoop()
	r := loop.NewSignalRelay(f.post)
	got := 0
	w, err := r.Watch(syscall.SIGUSR2, func(os.Signal) { got++ })
	require.NoError(t, err)
	raise(t, g, syscall.SIGUSR2)
	fn := f.next(t)
	require.NoError(t, w.Stop())
	require.NoError(t, w.Stop(), "Stop is idempotent")
	fn()
	assert.Zero(t, got, "callback ran after Stop")
	r.Close()
}

func TestSignalRelayNil(t *testing.T) {
	r := loop.NewSignalRelay(newFakeLoop().post)
	_, err := r.Watch(nil, func(os.Signal) {})
	assert.ErrorIs(t, err, loop.ErrNilSignal)
	_, err = r.Watch(syscall.SIGUSR1, nil)
	assert.ErrorIs(t, err, loop.ErrNilSignal)
	r.Close()
}

// TestSignalRelayClose: Close stops every watcher and waits for the relay's
// goroutines; a closed loop's Post error is absorbed, not a panic.
func TestSignalRelayClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := guard(t)
	f := newFakeLoop()
	r := loop.NewSignalRelay(f.post)
	for range 3 {
		_, err := r.Watch(syscall.SIGUSR1, func(os.Signal) {})
		require.NoError(t, err)
	}
	f.closed.Store(true)
	raise(t, g, syscall.SIGUSR1)
	time.Sleep(10 * time.Millisecond)
	r.Close()
	r.Close() // idempotent
}
