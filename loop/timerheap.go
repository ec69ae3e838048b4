package loop

import (
	"time"
)

// TimerHeap is the timer queue every backend shares: a binary min-heap
// ordered by (deadline, sequence), so that earlier deadlines fire first and
// equal deadlines fire in creation order. Adding, stopping and firing a
// timer are O(log n); 100,000 pending timers cost about 100 bytes each.
//
// A TimerHeap is used from the loop goroutine only. Backends ask it how
// long they may block ([TimerHeap.Timeout]) and fire what is due after
// polling ([TimerHeap.RunDue]).
type TimerHeap struct {
	timers []*heapTimer
	seq    uint64
	base   time.Time
}

// NewTimerHeap returns an empty heap.
func NewTimerHeap() *TimerHeap {
	return &TimerHeap{base: time.Now()}
}

type heapTimer struct {
	h      *TimerHeap
	when   int64 // nanoseconds since h.base
	repeat time.Duration
	seq    uint64
	idx    int // position in h.timers, -1 when not pending
	cb     func()
}

func (h *TimerHeap) nanos(t time.Time) int64 { return int64(t.Sub(h.base)) }

// Len is the number of pending timers.
func (h *TimerHeap) Len() int { return len(h.timers) }

// Add schedules cb after `after` (negative means now), then every repeat if
// repeat > 0.
func (h *TimerHeap) Add(after, repeat time.Duration, cb func()) Timer {
	t := &heapTimer{h: h, cb: cb, idx: -1}
	t.schedule(after, repeat)
	return t
}

func (t *heapTimer) schedule(after, repeat time.Duration) {
	if after < 0 {
		after = 0
	}
	h := t.h
	t.when = h.nanos(time.Now()) + int64(after)
	t.repeat = repeat
	h.seq++
	t.seq = h.seq
	if t.idx >= 0 {
		h.fix(t.idx)
	} else {
		h.push(t)
	}
}

func (t *heapTimer) Stop() bool {
	if t.idx < 0 {
		return false
	}
	t.h.remove(t.idx)
	return true
}

func (t *heapTimer) Reset(after, repeat time.Duration) bool {
	pending := t.idx >= 0
	t.schedule(after, repeat)
	return pending
}

// Timeout reports how long a poll may block before the earliest timer is
// due: ok is false when no timer is pending, d is 0 when one is due.
func (h *TimerHeap) Timeout(now time.Time) (d time.Duration, ok bool) {
	if len(h.timers) == 0 {
		return 0, false
	}
	d = time.Duration(h.timers[0].when - h.nanos(now))
	if d < 0 {
		d = 0
	}
	return d, true
}

// Next reports the earliest pending deadline without reading the clock
// (ok is false when no timer is pending): a loop that re-arms its timer
// source after every batch of callbacks compares it with the deadline it
// armed, and reads the clock only when it moved earlier.
func (h *TimerHeap) Next() (at time.Time, ok bool) {
	if len(h.timers) == 0 {
		return time.Time{}, false
	}
	return h.base.Add(time.Duration(h.timers[0].when)), true
}

// TimeoutMillis is Timeout rounded up to whole milliseconds for pollers
// with millisecond resolution (epoll_wait), so that a timer is never early;
// -1 means block indefinitely.
func (h *TimerHeap) TimeoutMillis(now time.Time) int {
	d, ok := h.Timeout(now)
	if !ok {
		return -1
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// RunDue fires every timer whose deadline is at or before now and returns
// how many fired. Timers created or reset by those callbacks wait for the
// next call even if already due, so a callback that re-arms itself with a
// zero delay cannot starve the loop.
func (h *TimerHeap) RunDue(now time.Time) int {
	limit := h.seq
	n := h.nanos(now)
	fired := 0
	for len(h.timers) > 0 {
		t := h.timers[0]
		if t.when > n || t.seq > limit {
			break
		}
		if t.repeat > 0 {
			t.when += int64(t.repeat)
			if t.when <= n {
				t.when = n + int64(t.repeat)
			}
			h.seq++
			t.seq = h.seq
			h.fix(0)
		} else {
			h.remove(0)
		}
		fired++
		t.cb()
	}
	return fired
}

func (h *TimerHeap) less(i, j int) bool {
	a, b := h.timers[i], h.timers[j]
	if a.when != b.when {
		return a.when < b.when
	}
	return a.seq < b.seq
}

func (h *TimerHeap) swap(i, j int) {
	h.timers[i], h.timers[j] = h.timers[j], h.timers[i]
	h.timers[i].idx = i
	h.timers[j].idx = j
}

func (h *TimerHeap) push(t *heapTimer) {
	t.idx = len(h.timers)
	h.timers = append(h.timers, t)
	h.up(t.idx)
}

func (h *TimerHeap) remove(i int) {
	last := len(h.timers) - 1
	t := h.timers[i]
	if i != last {
		h.swap(i, last)
	}
	h.timers[last] = nil
	h.timers = h.timers[:last]
	if i != last {
		h.fix(i)
	}
	t.idx = -1
}

func (h *TimerHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h *TimerHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h *TimerHeap) down(i0 int) bool {
	i, n := i0, len(h.timers)
	for {
		j := 2*i + 1
		if j >= n || j < 0 {
			break
		}
		if r := j + 1; r < n && h.less(r, j) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
