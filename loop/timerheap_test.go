package loop

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// at returns the instant of heap-relative nanoseconds ns.
func (h *TimerHeap) at(ns int64) time.Time { return h.base.Add(time.Duration(ns)) }

// far is a time after every deadline the tests use.
func far() time.Time { return time.Now().Add(time.Hour) }

func TestTimerHeapOrder(t *testing.T) {
	h := NewTimerHeap()
	var order []int
	for _, ms := range []int{30, 10, 20, 0, 5, 25, 15} {
		h.Add(time.Duration(ms)*time.Millisecond, 0, func() { order = append(order, ms) })
	}
	assert.Equal(t, 7, h.Len())
	assert.Equal(t, 7, h.RunDue(far()))
	assert.Equal(t, []int{0, 5, 10, 15, 20, 25, 30}, order)
	assert.Zero(t, h.Len())
}

// TestTimerHeapTies gives many timers exactly equal deadlines (which the
// clock cannot be relied on to produce) and checks that they fire in
// creation order within each deadline.
func TestTimerHeapTies(t *testing.T) {
	h := NewTimerHeap()
	type rec struct{ bucket, idx int }
	var fired []rec
	const n = 500
	timers := make([]*heapTimer, n)
	buckets := make([]int, n)
	for i := range n {
		b := rand.IntN(4)
		buckets[i] = b
		timers[i] = h.Add(time.Duration(b)*time.Millisecond, 0, func() { fired = append(fired, rec{b, i}) }).(*heapTimer)
	}
	for i, tm := range timers {
		tm.when = int64(buckets[i]) * int64(time.Millisecond)
	}
	for i := len(h.timers)/2 - 1; i >= 0; i-- { // re-establish the heap
		h.down(i)
	}
	require.Equal(t, n, h.RunDue(h.at(int64(time.Second))))
	require.Len(t, fired, n)
	ok := sort.SliceIsSorted(fired, func(i, j int) bool {
		if fired[i].bucket != fired[j].bucket {
			return fired[i].bucket < fired[j].bucket
		}
		return fired[i].idx < fired[j].idx
	})
	assert.True(t, ok, "equal deadlines must fire in creation order: %v", fired)
}

func TestTimerHeapNotBeforeDeadline(t *testing.T) {
	h := NewTimerHeap()
	fired := false
	tm := h.Add(10*time.Millisecond, 0, func() { fired = true }).(*heapTimer)
	assert.Zero(t, h.RunDue(h.at(tm.when-1)), "a timer fired 1ns before its deadline")
	assert.False(t, fired)
	assert.Equal(t, 1, h.RunDue(h.at(tm.when)), "a timer is due at its deadline")
	assert.True(t, fired)
}

func TestTimerHeapStop(t *testing.T) {
	h := NewTimerHeap()
	var fired []int
	var timers []Timer
	for i := range 10 {
		timers = append(timers, h.Add(time.Duration(i)*time.Millisecond, 0, func() { fired = append(fired, i) }))
	}
	for _, i := range []int{0, 3, 9, 5} {
		assert.True(t, timers[i].Stop(), "Stop of pending timer %d", i)
		assert.False(t, timers[i].Stop(), "second Stop of timer %d", i)
	}
	assert.Equal(t, 6, h.Len())
	h.RunDue(far())
	assert.Equal(t, []int{1, 2, 4, 6, 7, 8}, fired)
	assert.False(t, timers[1].Stop(), "Stop of a fired timer")
}

func TestTimerHeapReset(t *testing.T) {
	h := NewTimerHeap()
	var fired []string
	a := h.Add(time.Millisecond, 0, func() { fired = append(fired, "a") })
	h.Add(2*time.Millisecond, 0, func() { fired = append(fired, "b") })
	assert.True(t, a.Reset(3*time.Millisecond, 0), "Reset of a pending timer")
	assert.Equal(t, 2, h.Len(), "Reset must not duplicate a pending timer")
	h.RunDue(far())
	assert.Equal(t, []string{"b", "a"}, fired)

	assert.False(t, a.Reset(0, 0), "Reset of a fired timer")
	assert.Equal(t, 1, h.Len())
	h.RunDue(far())
	assert.Equal(t, []string{"b", "a", "a"}, fired)

	// Reset of a stopped timer re-arms it.
	assert.False(t, a.Stop())
	a.Reset(0, 0)
	require.True(t, a.Stop())
	assert.False(t, a.Reset(0, 0))
	h.RunDue(far())
	assert.Equal(t, []string{"b", "a", "a", "a"}, fired)
}

func TestTimerHeapRepeat(t *testing.T) {
	h := NewTimerHeap()
	n := 0
	tm := h.Add(time.Millisecond, 5*time.Millisecond, func() { n++ }).(*heapTimer)
	first := tm.when
	assert.Equal(t, 1, h.RunDue(h.at(first)))
	assert.Equal(t, first+int64(5*time.Millisecond), tm.when, "next deadline one period after the last")
	assert.Equal(t, 1, h.Len(), "a repeating timer stays pending")
	assert.Zero(t, h.RunDue(h.at(tm.when-1)))
	assert.Equal(t, 1, h.RunDue(h.at(tm.when)))

	// Far behind: it fires once per call, then one period after now,
	// rather than catching up with a burst.
	late := tm.when + int64(time.Second)
	assert.Equal(t, 1, h.RunDue(h.at(late)))
	assert.Equal(t, late+int64(5*time.Millisecond), tm.when)
	assert.Equal(t, 3, n)

	assert.True(t, tm.Stop())
	assert.Zero(t, h.RunDue(far()))
}

// TestTimerHeapRunDueSkipsNewTimers: timers created or re-armed by the
// callbacks of one RunDue call wait for the next call, even when already
// due, so a zero-delay re-arm cannot starve the loop.
func TestTimerHeapRunDueSkipsNewTimers(t *testing.T) {
	h := NewTimerHeap()
	created := 0
	h.Add(0, 0, func() {
		h.Add(-time.Second, 0, func() { created++ })
	})
	var self Timer
	selfRuns := 0
	self = h.Add(0, 0, func() {
		selfRuns++
		self.Reset(0, 0)
	})
	now := far()
	assert.Equal(t, 2, h.RunDue(now))
	assert.Zero(t, created, "a timer created during RunDue ran in the same call")
	assert.Equal(t, 1, selfRuns)
	assert.Equal(t, 2, h.RunDue(now))
	assert.Equal(t, 1, created)
	assert.Equal(t, 2, selfRuns)

	// A repeating timer whose period is shorter than the time that passed
	// also fires once per call.
	h2 := NewTimerHeap()
	rep := 0
	h2.Add(0, time.Nanosecond, func() { rep++ })
	assert.Equal(t, 1, h2.RunDue(far()))
	assert.Equal(t, 1, rep)
}

func TestTimerHeapCallbackStopsOther(t *testing.T) {
	h := NewTimerHeap()
	var second Timer
	secondFired := false
	h.Add(0, 0, func() { assert.True(t, second.Stop()) })
	second = h.Add(0, 0, func() { secondFired = true })
	h.RunDue(far())
	assert.False(t, secondFired, "a timer stopped by an earlier callback of the same RunDue fired")
	assert.Zero(t, h.Len())
}

func TestTimerHeapTimeout(t *testing.T) {
	h := NewTimerHeap()
	d, ok := h.Timeout(time.Now())
	assert.False(t, ok)
	assert.Zero(t, d)
	assert.Equal(t, -1, h.TimeoutMillis(time.Now()), "no timer: block indefinitely")

	tm := h.Add(time.Hour, 0, func() {}).(*heapTimer)
	d, ok = h.Timeout(h.at(tm.when - int64(1500*time.Microsecond)))
	assert.True(t, ok)
	assert.Equal(t, 1500*time.Microsecond, d)
	d, ok = h.Timeout(h.at(tm.when + 1))
	assert.True(t, ok)
	assert.Zero(t, d, "an overdue timer: 0, never negative")

	for _, c := range []struct {
		before time.Duration
		want   int
	}{
		{1500 * time.Microsecond, 2},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + time.Nanosecond, 2},
		{0, 0},
		{-time.Second, 0},
	} {
		got := h.TimeoutMillis(h.at(tm.when - int64(c.before)))
		assert.Equal(t, c.want, got, "TimeoutMillis %v before the deadline must round up", c.before)
	}
}

// TestTimerHeapNext: the earliest deadline, without a clock read, in
// step with Timeout.
func TestTimerHeapNext(t *testing.T) {
	h := NewTimerHeap()
	_, ok := h.Next()
	assert.False(t, ok, "no timer")
	late := h.Add(time.Hour, 0, func() {}).(*heapTimer)
	early := h.Add(time.Minute, 0, func() {}).(*heapTimer)
	at, ok := h.Next()
	require.True(t, ok)
	assert.Equal(t, h.at(early.when), at, "the earliest deadline")
	now := time.Now()
	d, _ := h.Timeout(now)
	assert.Equal(t, at.Sub(now), d, "Timeout is Next less now")
	early.Stop()
	at, _ = h.Next()
	assert.Equal(t, h.at(late.when), at, "after Stop, the next one")
	late.Reset(time.Second, 0)
	at, _ = h.Next()
	assert.Equal(t, h.at(late.when), at, "Reset moves it")
}

func TestTimerHeapNegativeAfter(t *testing.T) {
	h := NewTimerHeap()
	fired := false
	h.Add(-time.Hour, 0, func() { fired = true })
	d, ok := h.Timeout(time.Now())
	assert.True(t, ok)
	assert.Zero(t, d)
	assert.Equal(t, 1, h.RunDue(time.Now()))
	assert.True(t, fired)
}

// TestTimerHeapMany: 100,000 random timers with random stops all fire in
// (deadline, creation) order.
func TestTimerHeapMany(t *testing.T) {
	h := NewTimerHeap()
	const n = 100_000
	timers := make([]*heapTimer, n)
	var fired []*heapTimer
	for i := range n {
		var self *heapTimer
		self = h.Add(time.Duration(rand.IntN(1000))*time.Microsecond, 0, func() { fired = append(fired, self) }).(*heapTimer)
		timers[i] = self
	}
	stopped := 0
	for i := 0; i < n; i += 7 {
		require.True(t, timers[i].Stop())
		stopped++
	}
	require.Equal(t, n-stopped, h.Len())
	require.Equal(t, n-stopped, h.RunDue(far()))
	for i := 1; i < len(fired); i++ {
		a, b := fired[i-1], fired[i]
		if a.when > b.when || (a.when == b.when && a.seq > b.seq) {
			t.Fatalf("timer %d fired out of order", i)
		}
	}
}
