//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"time"

	"github.com/evhub/evhub/loop"
)

// deadTimer is the Timer of a closed loop or a nil callback: it never
// fires.
type deadTimer struct{}

func (deadTimer) Stop() bool                    { return false }
func (deadTimer) Reset(_, _ time.Duration) bool { return false }

// Timer calls cb once after `after`, then every `repeat` if repeat > 0. On
// a closed loop, or with a nil cb, the timer never fires.
//
// The timer is the shared heap's own, unwrapped (one allocation per
// timer). A Reset to an earlier deadline is seen by the rearm that follows
// every batch of callbacks, and by Run and RunOnce when they start, which
// covers every place a Reset can be called from.
func (l *Loop) Timer(after, repeat time.Duration, cb func()) loop.Timer {
	if l.closed || cb == nil {
		return deadTimer{}
	}
	t := l.timers.Add(after, repeat, cb)
	l.rearm()
	return t
}

// rearm makes the timer source fire no later than the earliest deadline.
// It only ever moves the armed deadline earlier: a source that fires
// early finds nothing due and is re-armed then, which is cheaper than
// re-arming on every Stop. It runs after every fd's callbacks, so when
// the earliest deadline has not moved earlier it reads no clock either.
func (l *Loop) rearm() {
	if at, ok := l.timers.Next(); ok {
		l.tsrc.arm(at)
	}
}

// runTimers fires what is due and re-arms for the rest; it reports
// whether a callback ran.
func (l *Loop) runTimers() bool {
	l.tsrc.fired()
	n := l.timers.RunDue(time.Now())
	if !l.closed {
		l.rearm()
	}
	return n > 0
}
