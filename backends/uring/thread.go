//go:build linux && uring

package uring

import (
	"errors"
	"runtime"

	"github.com/evhub/evhub/loop"
)

var _ loop.ThreadRunner = (*Loop)(nil)

// RunOnThread runs the loop on the calling goroutine locked to its OS
// thread, with a ring bound to that thread (IORING_SETUP_SINGLE_ISSUER
// and DEFER_TASKRUN), then closes it there; see loop.ThreadRunner. The
// ring is made anew at the start, so binding needs a loop that has given
// the kernel nothing yet (no request made, no Run before); otherwise, or
// on a kernel older than 6.1, the loop runs on its first ring, unbound.
// A bound loop receives with multishot requests (one request for every
// message, not one per message) and never yields its thread between
// iterations.
func (l *Loop) RunOnThread() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if !l.running {
		l.bind()
	}
	err := l.Run()
	return errors.Join(err, l.Close())
}

// bind replaces the ring with one bound to the calling thread, if the old
// one holds nothing: no request in the kernel, none written, none made.
func (l *Loop) bind() {
	if l.closed || l.bound || l.readLive || l.br != nil || l.r.pending() > 0 ||
		len(l.watches.items) > 0 || len(l.recvs.items) > 0 || len(l.sends.items) > 0 {
		return
	}
	r, err := newBoundRing(sqEntries, cqEntries)
	if err != nil {
		return
	}
	old := l.r
	l.r = r
	l.bound = true
	_ = old.close()
}
