//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"github.com/panjf2000/gnet/v2/pkg/netpoll"

	"github.com/evhub/evhub/loop"
)

// onEvent is Polling's callback, once per event of a wait.
func (l *Loop) onEvent(fd int, ev netpoll.IOEvent, flags netpoll.IOFlags) error {
	l.inEvent = true
	switch {
	case fd == l.tfd:
		if l.once {
			if l.onceTimers {
				break
			}
			l.onceTimers = true
			l.endOnce()
		}
		if l.runTimers() {
			l.afterCallbacks(true)
		}
		if l.posts.Pending() {
			// A drain deferred by drainTask: Trigger it now, so that it
			// runs after this batch's I/O.
			l.trigger(l.drainFn)
		}
	case !l.nested:
		l.onIO(fd, decodeEvent(ev, flags))
	case fd == l.regFD:
		if l.once {
			if l.onceIO {
				break // one batch per RunOnce; the rest stays queued in reg
			}
			l.onceIO = true
			l.endOnce()
		}
		l.dispatch()
	}
	l.inEvent = false
	return nil
}

// onIO runs the watchers of one fd's readiness (one poller). gnet's
// Polling calls back once per event and shows no batch's end, so what a
// batch does at its end with two pollers — drain what the callbacks
// posted, re-arm the timer source, yield — is done after each fd's
// callbacks; gnet's Polling itself yields before it blocks.
func (l *Loop) onIO(fd int, ev loop.Events) {
	if fd >= len(l.fds) {
		return
	}
	rec := l.fds[fd]
	if rec == nil || rec.quarantined {
		return
	}
	if l.once {
		// A RunOnce is one wait, but ending Polling takes a Trigger that
		// the next wait sees, with whatever else it collects: an fd
		// dispatched already in this RunOnce is one of those. A level
		// readiness is reported again by the next wait; an edge is not,
		// so it is dispatched now.
		if !rec.edge {
			if rec.seen == l.onceID {
				return
			}
			rec.seen = l.onceID
		}
		if !l.onceIO {
			l.onceIO = true
			l.endOnce()
		}
		if ran, loud := l.fire(rec, ev); ran {
			l.afterCallbacks(loud)
		}
		return
	}
	// Outside RunOnce (whose one drain is counted), what the callbacks
	// post is drained when they return, with no Trigger.
	l.bw.Begin()
	ran, loud := l.fire(rec, ev)
	if l.bw.End() && l.drainPosts() > 0 {
		ran, loud = true, true
	}
	if ran {
		l.afterCallbacks(loud)
	}
}

// fire calls the watchers of rec that want ev and reports whether one
// ran, and whether one that is not quiet (loop.Quieter) did. It allocates
// nothing.
func (l *Loop) fire(rec *fdRec, ev loop.Events) (ran, loud bool) {
	for _, w := range rec.ws {
		if w.stopped {
			continue // stopped earlier in this batch
		}
		if got := ev & w.ev; got != 0 {
			ran = true
			loud = loud || !w.quiet
			w.cb(got)
		}
	}
	return ran, loud
}

// dispatch (nested) collects one batch from the registration poller and
// runs its callbacks. It allocates nothing.
func (l *Loop) dispatch() {
	l.ready = waitInner(l.regFD, l.raw, l.ready[:0])
	l.batch++
	ran, loud := false, false
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
		rn, ld := l.fire(rec, r.ev)
		ran, loud = ran || rn, loud || ld
	}
	if inline && l.bw.End() && l.drainPosts() > 0 {
		ran, loud = true, true
	}
	if ran {
		l.afterCallbacks(loud)
	}
}

// quarantine is the one-poller answer to fd-number reuse within a wait.
// A wait's events are dispatched one by one, so a callback may stop an
// fd's last watcher, close the fd and watch a new file that got the same
// number while an event of the old file, collected by the same wait, is
// still to come: it must not reach the new watchers. Polling shows no
// wait's end, so a record made for a number whose previous record went in
// the same gen (while an event was being dispatched, and since the last
// point at which no collected event was pending) ignores its events until
// releaseQuarantine, which a Trigger brings within the next wait's chores.
// A level-triggered readiness is reported again by the next wait; an
// edge-triggered registration is re-applied there, which reports the new
// file's readiness once if it has one. A new fd number costs nothing.
func (l *Loop) quarantine(rec *fdRec) {
	rec.quarantined = true
	l.quarantined = append(l.quarantined, rec)
	if !l.releasePending {
		l.releasePending = true
		l.trigger(l.releaseFn)
	}
}

// forget notes that fd's last record is gone.
func (l *Loop) forget(fd int) {
	l.fds[fd] = nil
	if l.inEvent && !l.nested {
		l.gone[fd] = l.gen
	}
}

// suspect reports whether a record made now for fd must be quarantined.
func (l *Loop) suspect(fd int) bool {
	return l.inEvent && !l.nested && fd < len(l.gone) && l.gone[fd] == l.gen
}

// releaseTask runs in Polling's chores.
func (l *Loop) releaseTask(any) error {
	l.gen++
	l.releasePending = false
	l.releaseQuarantine()
	return l.endCheck()
}

// releaseQuarantine ends every quarantine; it runs where no collected
// event is pending.
func (l *Loop) releaseQuarantine() {
	for i, rec := range l.quarantined {
		l.quarantined[i] = nil
		if !rec.quarantined {
			continue
		}
		rec.quarantined = false
		if rec.edge && rec.kernel != 0 && !l.closed && l.fds[rec.pa.FD] == rec {
			// Report the new file's readiness again, if it has one: the
			// edge may have come, and been ignored, in quarantine.
			want := rec.kernel
			if applyInterest(l, rec, 0) == nil {
				_ = applyInterest(l, rec, want)
			}
		}
	}
	l.quarantined = l.quarantined[:0]
}

// endOnce asks Polling to return after the current batch of a RunOnce.
func (l *Loop) endOnce() {
	l.onceDone = true
	if !l.onceTrig {
		l.onceTrig = true
		l.trigger(l.onceFn)
	}
}
