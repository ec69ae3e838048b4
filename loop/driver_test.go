package loop_test

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/loop"
)

// runAsync runs fn on a new goroutine and returns a channel that receives
// its error.
func runAsync(fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return done
}

// await fails the test unless done delivers within a generous bound.
func await(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		require.FailNow(t, what+" did not return")
		return nil
	}
}

// closeDriver closes d with no backend parts and requires success.
func closeDriver(t *testing.T, d *loop.Driver) {
	t.Helper()
	require.NoError(t, d.Close(nil, nil))
}

func TestDriverPostRunsInOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := loop.NewDriver(loop.DriverConfig{Name: "test"})
	var got []int
	for i := range 5 {
		require.NoError(t, d.Post(func() { got = append(got, i) }))
	}
	require.NoError(t, d.RunOnce(false))
	assert.Equal(t, []int{0, 1, 2, 3, 4}, got)
	assert.ErrorIs(t, d.Post(nil), loop.ErrNilFunc)
	closeDriver(t, d)
	assert.ErrorIs(t, d.Post(func() {}), loop.ErrClosed)
}

func TestDriverStopBeforeRunReturnsAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := loop.NewDriver(loop.DriverConfig{Name: "test"})
	d.Stop()
	require.NoError(t, await(t, runAsync(d.Run), "Run after Stop"))
	// The Stop was consumed: the next Run blocks until another Stop.
	done := runAsync(d.Run)
	ran := make(chan struct{})
	require.NoError(t, d.Post(func() { close(ran) }))
	<-ran
	d.Stop()
	require.NoError(t, await(t, done, "Run after a second Stop"))
	closeDriver(t, d)
}

func TestDriverRunOnceBlocksUntilWork(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := loop.NewDriver(loop.DriverConfig{Name: "test"})

	// Nothing to do: a non-blocking iteration returns at once.
	require.NoError(t, d.RunOnce(false))

	// A post from another goroutine ends a blocking iteration.
	var ran atomic.Bool
	done := runAsync(func() error { return d.RunOnce(true) })
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, d.Post(func() { ran.Store(true) }))
	require.NoError(t, await(t, done, "RunOnce(true) after Post"))
	assert.True(t, ran.Load())

	// So does a timer, never early.
	fired := false
	start := time.Now()
	d.Timer(20*time.Millisecond, 0, func() { fired = true })
	require.NoError(t, d.RunOnce(true))
	assert.True(t, fired)
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)

	// A nil callback makes a timer that fires without effect.
	d.Timer(time.Millisecond, 0, nil)
	require.NoError(t, d.RunOnce(true))

	// And so does Stop, which the next Run then consumes.
	done = runAsync(func() error { return d.RunOnce(true) })
	time.Sleep(10 * time.Millisecond)
	d.Stop()
	require.NoError(t, await(t, done, "RunOnce(true) after Stop"))
	require.NoError(t, d.Run())
	closeDriver(t, d)
}

func TestDriverDispatchAndPending(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var events atomic.Int32 // backend events waiting for dispatch
	var checks atomic.Int32 // re-checks the backend scheduled for itself
	var dispatched atomic.Int32
	d := loop.NewDriver(loop.DriverConfig{
		Name: "test",
		Dispatch: func() int {
			n := int(events.Swap(0))
			dispatched.Add(int32(n))
			if checks.Load() > 0 {
				checks.Add(-1) // a re-check that found nothing ready
			}
			return n
		},
		Pending: func() bool { return checks.Load() > 0 },
	})

	// An event that arrives with a wake-up ends a blocking iteration.
	done := runAsync(func() error { return d.RunOnce(true) })
	time.Sleep(10 * time.Millisecond)
	events.Add(2)
	d.Wake()
	require.NoError(t, await(t, done, "RunOnce(true) after an event"))
	assert.EqualValues(t, 2, dispatched.Load())

	// Work the backend reports as pending is done without a wake-up, even
	// by iterations that ran nothing: all three re-checks happen while the
	// loop waits for its next event.
	checks.Store(3)
	done = runAsync(func() error { return d.RunOnce(true) })
	require.Eventually(t, func() bool { return checks.Load() == 0 }, 10*time.Second, time.Millisecond)
	events.Add(1)
	d.Wake()
	require.NoError(t, await(t, done, "RunOnce(true) after the re-checks"))
	assert.EqualValues(t, 3, dispatched.Load())
	closeDriver(t, d)
}

func TestDriverClosedErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := loop.NewDriver(loop.DriverConfig{Name: "test"})
	_, err := d.Signal(nil, nil)
	require.ErrorIs(t, err, loop.ErrNilSignal)
	assert.EqualError(t, err, "test: signal <nil>: "+loop.ErrNilSignal.Error())

	assert.False(t, d.Closed())
	closeDriver(t, d)
	assert.True(t, d.Closed())

	err = d.Run()
	require.ErrorIs(t, err, loop.ErrClosed)
	assert.EqualError(t, err, "test: run: loop: closed")
	err = d.RunOnce(true)
	require.ErrorIs(t, err, loop.ErrClosed)
	assert.EqualError(t, err, "test: run once: loop: closed")
	_, err = d.Signal(syscall.SIGUSR1, func(os.Signal) {})
	require.ErrorIs(t, err, loop.ErrClosed)
	assert.EqualError(t, err, "test: signal user defined signal 1: loop: closed")
}

func TestDriverCloseOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := loop.NewDriver(loop.DriverConfig{Name: "test"})
	var order []string
	require.NoError(t, d.Post(func() { order = append(order, "early post") }))
	errDrain, errRelease := errors.New("drain failed"), errors.New("release failed")
	err := d.Close(func() error {
		assert.True(t, d.Closed(), "closed before drain")
		order = append(order, "drain")
		// What the backend posts while draining still runs.
		assert.NoError(t, d.Post(func() { order = append(order, "drain post") }))
		return errDrain
	}, func() error {
		order = append(order, "release")
		assert.ErrorIs(t, d.Post(func() {}), loop.ErrClosed)
		return errRelease
	})
	assert.Equal(t, []string{"drain", "early post", "drain post", "release"}, order)
	require.ErrorIs(t, err, errDrain)
	require.ErrorIs(t, err, errRelease)
	assert.EqualError(t, err, "test: close: drain failed\nrelease failed")

	// A second Close calls neither part.
	require.NoError(t, d.Close(func() error { panic("drain again") }, func() error { panic("release again") }))
}
