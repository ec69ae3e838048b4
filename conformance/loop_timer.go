//go:build unix

package conformance

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

var timerCases = []loopCase{
	{"NeverEarly", testTimerNeverEarly},
	{"Order", testTimerOrder},
	{"EqualDeadlines", testTimerEqualDeadlines},
	{"Stop", testTimerStop},
	{"Reset", testTimerReset},
	{"Repeat", testTimerRepeat},
	{"NegativeFiresPromptly", testTimerNegative},
	{"CallbacksCreateAndStop", testTimerCallbacksCreateAndStop},
	{"RearmZeroDoesNotStarve", testTimerRearmZero},
	{"HundredThousand", testTimerHundredThousand},
}

// testTimerNeverEarly: no timer fires before its duration has passed
// (measured with time.Since from before the Timer call).
func testTimerNeverEarly(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	durations := []time.Duration{0, time.Microsecond, 500 * time.Microsecond, time.Millisecond,
		2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond}
	fired := 0
	for _, d := range durations {
		start := time.Now()
		l.Timer(d, 0, func() {
			fired++
			if el := time.Since(start); el < d {
				t.Errorf("timer of %v fired after %v: early", d, el)
			}
		})
	}
	runUntil(t, l, "every timer", func() bool { return fired == len(durations) })
}

// testTimerOrder: earlier deadlines fire first, whatever the creation order.
func testTimerOrder(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	afters := []time.Duration{30, 10, 20, 0, 5, 15}
	var order []time.Duration
	for _, a := range afters {
		l.Timer(a*time.Millisecond, 0, func() { order = append(order, a) })
	}
	runUntil(t, l, "every timer", func() bool { return len(order) == len(afters) })
	assert.Equal(t, []time.Duration{0, 5, 10, 15, 20, 30}, order, "timers (ms) must fire earliest deadline first")
}

// testTimerEqualDeadlines: timers with the same duration fire in creation
// order, even where the backend's clock cannot tell their deadlines apart.
func testTimerEqualDeadlines(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	const n = 50
	var order []int
	for i := range n {
		l.Timer(5*time.Millisecond, 0, func() { order = append(order, i) })
	}
	runUntil(t, l, "every timer", func() bool { return len(order) == n })
	for i, v := range order {
		if v != i {
			t.Fatalf("equal timers fired in order %v, want creation order", order)
		}
	}
}

// testTimerStop: a timer stopped before its deadline never fires; Stop
// reports whether it was pending.
func testTimerStop(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var stoppedFired, otherFired bool
	stopped := l.Timer(5*time.Millisecond, 0, func() { stoppedFired = true })
	l.Timer(15*time.Millisecond, 0, func() { otherFired = true })
	assert.True(t, stopped.Stop(), "Stop of a pending timer must report true")
	assert.False(t, stopped.Stop(), "a second Stop must report false")
	runUntil(t, l, "the other timer", func() bool { return otherFired })
	assert.False(t, stoppedFired, "a stopped timer fired")

	fired := false
	tm := l.Timer(0, 0, func() { fired = true })
	runUntil(t, l, "a timer", func() bool { return fired })
	assert.False(t, tm.Stop(), "Stop of a fired timer must report false")

	// Stopped from an earlier callback of the same iteration.
	var second bool
	var t2 loop.Timer
	l.Timer(time.Millisecond, 0, func() { t2.Stop() })
	t2 = l.Timer(time.Millisecond, 0, func() { second = true })
	time.Sleep(3 * time.Millisecond) // both due at once
	runFor(t, l, 20*time.Millisecond)
	assert.False(t, second, "a timer stopped by an earlier callback of the same iteration fired")
}

// testTimerReset: Reset moves the deadline (never early relative to the
// Reset), re-arms a fired timer, and reports whether it was pending.
func testTimerReset(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var firedAt []time.Duration
	start := time.Now()
	tm := l.Timer(5*time.Millisecond, 0, func() { firedAt = append(firedAt, time.Since(start)) })
	resetAt := time.Since(start)
	assert.True(t, tm.Reset(30*time.Millisecond, 0), "Reset of a pending timer must report true")
	runUntil(t, l, "the reset timer", func() bool { return len(firedAt) == 1 })
	assert.GreaterOrEqual(t, firedAt[0], resetAt+30*time.Millisecond, "a reset timer fired before its new deadline")

	again := time.Since(start)
	assert.False(t, tm.Reset(2*time.Millisecond, 0), "Reset of a fired timer must report false")
	runUntil(t, l, "the timer reset after firing", func() bool { return len(firedAt) == 2 })
	assert.GreaterOrEqual(t, firedAt[1], again+2*time.Millisecond, "early")

	// Reset to an earlier deadline.
	var t3fired time.Duration
	t3start := time.Now()
	t3 := l.Timer(time.Hour, 0, func() { t3fired = time.Since(t3start) })
	assert.True(t, t3.Reset(time.Millisecond, 0))
	runUntil(t, l, "a timer reset to an earlier deadline", func() bool { return t3fired > 0 })
	assert.GreaterOrEqual(t, t3fired, time.Millisecond, "early")
}

// testTimerRepeat: a repeating timer fires every period, never early, until
// stopped (also from its own callback).
func testTimerRepeat(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	const after, period = 2 * time.Millisecond, 3 * time.Millisecond
	var (
		tm    loop.Timer
		fires []time.Duration
	)
	start := time.Now()
	tm = l.Timer(after, period, func() {
		fires = append(fires, time.Since(start))
		if len(fires) == 5 {
			tm.Stop()
		}
	})
	runUntil(t, l, "five repeats", func() bool { return len(fires) >= 5 })
	runFor(t, l, 5*period)
	require.Len(t, fires, 5, "a repeating timer fired after Stop from its own callback")
	for k, at := range fires {
		if min := after + time.Duration(k)*period; at < min {
			t.Errorf("repeat #%d fired at %v, before %v", k+1, at, min)
		}
	}
}

// testTimerNegative: negative and zero durations fire promptly.
func testTimerNegative(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	fired := 0
	l.Timer(-time.Hour, 0, func() { fired++ })
	l.Timer(-1, 0, func() { fired++ })
	l.Timer(0, 0, func() { fired++ })
	runUntil(t, l, "negative and zero timers", func() bool { return fired == 3 })
}

// testTimerCallbacksCreateAndStop: a callback may create timers (which
// fire) and stop others (which do not).
func testTimerCallbacksCreateAndStop(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var createdFired, victimFired bool
	var chain int
	victim := l.Timer(20*time.Millisecond, 0, func() { victimFired = true })
	l.Timer(time.Millisecond, 0, func() {
		assert.True(t, victim.Stop(), "Stop from a callback")
		l.Timer(time.Millisecond, 0, func() { createdFired = true })
		// A chain of zero-delay timers created from callbacks.
		var next func()
		next = func() {
			chain++
			if chain < 10 {
				l.Timer(0, 0, next)
			}
		}
		l.Timer(0, 0, next)
	})
	runUntil(t, l, "timers created by a callback", func() bool { return createdFired && chain == 10 })
	runFor(t, l, 30*time.Millisecond)
	assert.False(t, victimFired, "a timer stopped from a callback fired")
}

// testTimerRearmZero: a timer that re-arms itself with zero delay from its
// callback does not starve the loop: iterations end, posts still run.
func testTimerRearmZero(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	var fires atomic.Int64
	var tm loop.Timer
	tm = l.Timer(0, 0, func() {
		fires.Add(1)
		tm.Reset(0, 0)
	})
	for range 3 {
		runNoWait(t, l)
	}
	startRun(t, l)
	posted := make(chan struct{})
	require.NoError(t, l.Post(func() { close(posted) }))
	wait(t, posted, "a Post while a timer re-arms itself with zero delay")
	do(t, l, func() { tm.Stop() })
	assert.Positive(t, fires.Load())
}

// testTimerHundredThousand: 100,000 pending timers all fire, none early,
// in bounded time.
func testTimerHundredThousand(t *testing.T, open opener) {
	l, _ := openLoop(t, open)
	const n = 100_000
	starts := make([]time.Time, n)
	fired, early := 0, 0
	begin := time.Now()
	for i := range n {
		after := time.Duration(i%50) * time.Millisecond
		starts[i] = time.Now()
		l.Timer(after, 0, func() {
			fired++
			if time.Since(starts[i]) < after {
				early++
			}
		})
	}
	created := time.Since(begin)
	runUntil(t, l, "100,000 timers", func() bool { return fired == n })
	assert.Zero(t, early, "timers fired early")
	t.Logf("100,000 timers: created in %v, all fired after %v", created, time.Since(begin))
}
