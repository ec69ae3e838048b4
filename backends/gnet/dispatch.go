//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
)

// onEvent is the outer Polling's callback.
func (l *Loop) onEvent(fd int, _ netpoll.IOEvent, _ netpoll.IOFlags) error {
	switch fd {
	case l.innerFD:
		if l.once {
			if l.onceIO {
				return nil // one batch per RunOnce; the rest stays queued in inner
			}
			l.onceIO = true
			l.endOnce()
		}
		l.dispatch()
	case l.tfd:
		if l.once {
			if l.onceTimers {
				return nil
			}
			l.onceTimers = true
			l.endOnce()
		}
		if l.runTimers() {
			l.afterCallbacks()
		}
		if l.posts.Pending() {
			// A drain deferred by drainTask: Trigger it now, so that it
			// runs after this batch's I/O.
			l.trigger(l.drainFn)
		}
	}
	return nil
}

// dispatch collects one batch from the inner poller and runs its
// callbacks. It allocates nothing.
func (l *Loop) dispatch() {
	l.ready = waitInner(l.innerFD, l.raw, l.ready[:0])
	l.batch++
	ran := false
	// Outside RunOnce (whose one batch and one drain are counted), what
	// the callbacks post is drained at the batch's end, with no Trigger.
	inline := !l.once
	if inline {
		l.bw.Begin()
	}
	for i := range l.ready {
		r := &l.ready[i]
		if r.fd >= len(l.fds) {
			continue
		}
		rec := l.fds[r.fd]
		if rec == nil || rec.born == l.batch {
			continue // stopped, or a stale event of a previous file
		}
		for _, w := range rec.ws {
			if w.stopped {
				continue // stopped earlier in this batch
			}
			if got := r.ev & w.ev; got != 0 {
				ran = true
				w.cb(got)
			}
		}
	}
	if inline && l.bw.End() && l.drainPosts() > 0 {
		ran = true
	}
	if ran {
		l.afterCallbacks()
	}
}

// endOnce asks Polling to return after the current batch of a RunOnce.
func (l *Loop) endOnce() {
	l.onceDone = true
	if !l.onceTrig {
		l.onceTrig = true
		l.trigger(l.onceFn)
	}
}
