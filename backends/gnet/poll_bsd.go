//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package gnet

import (
	"time"

	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// ctlName names the registration syscall in errors.
const ctlName = "kevent"

// onePoller is false: the kqueue poller has no eventfd to re-wake it
// with, so the watched fds live in a second poller (nested) and the one
// that runs is replaced after Polling returns.
const onePoller = false

// applyInterest makes the registration poller's filters for rec equal to
// want.
// kqueue has one filter per direction. gnet's poller adds either filter
// and removes the write filter (ModRead), but its Delete is a no-op on
// kqueue and nothing removes a read filter, so that one is deleted here
// directly on the registration kqueue.
func applyInterest(l *Loop, rec *fdRec, want loop.Events) error {
	have := rec.kernel
	p, pa := l.reg, &rec.pa
	if want&loop.Writable != 0 && have&loop.Writable == 0 {
		if err := p.AddWrite(pa, rec.edge); err != nil {
			return err
		}
		have |= loop.Writable
		rec.kernel = have
	}
	if want&loop.Writable == 0 && have&loop.Writable != 0 {
		if err := p.ModRead(pa, rec.edge); err != nil {
			return err
		}
		have &^= loop.Writable
		rec.kernel = have
	}
	if want&loop.Readable != 0 && have&loop.Readable == 0 {
		if err := p.AddRead(pa, rec.edge); err != nil {
			return err
		}
		have |= loop.Readable
		rec.kernel = have
	}
	if want&loop.Readable == 0 && have&loop.Readable != 0 {
		var kev unix.Kevent_t
		unix.SetKevent(&kev, pa.FD, unix.EVFILT_READ, unix.EV_DELETE)
		if _, err := unix.Kevent(l.regFD, []unix.Kevent_t{kev}, nil, nil); err != nil {
			return err
		}
		have &^= loop.Readable
		rec.kernel = have
	}
	return nil
}

// rawEvents is the buffer of one wait on the registration poller.
type rawEvents []unix.Kevent_t

func newRawEvents(n int) rawEvents { return make(rawEvents, n) }

// waitInner collects, without blocking, what the registration kqueue has ready
// and appends it to ready. EOF and errors are reported in the filter's
// direction, so that the next syscall surfaces them.
func waitInner(kq int, raw rawEvents, ready []readyEvent) []readyEvent {
	var zero unix.Timespec
	n, err := unix.Kevent(kq, nil, raw, &zero)
	if err != nil {
		return ready // EINTR: the poller reports the registration poller again
	}
	for i := range n {
		e := &raw[i]
		var ev loop.Events
		switch e.Filter {
		case unix.EVFILT_READ:
			ev = loop.Readable
		case unix.EVFILT_WRITE:
			ev = loop.Writable
		default:
			continue // the registration poller's own wake-up, never Triggered
		}
		ready = append(ready, readyEvent{fd: int(e.Ident), ev: ev})
	}
	return ready
}

// decodeEvent maps an event of Polling's callback (a filter) to
// readiness, as waitInner does. Only a loop with one poller uses it, and
// the BSDs never open one (onePoller).
func decodeEvent(filter netpoll.IOEvent, _ netpoll.IOFlags) loop.Events {
	switch int(filter) {
	case unix.EVFILT_READ:
		return loop.Readable
	case unix.EVFILT_WRITE:
		return loop.Writable
	}
	return 0
}

// goTimerSource drives the timer heap with a runtime timer that Triggers
// the poller: the BSDs have no timerfd, and gnet's poller exposes no
// EVFILT_TIMER.
type goTimerSource struct {
	l     *Loop
	t     *time.Timer
	armed bool
	at    time.Time
	task  func(any) error
}

func newTimerSource(l *Loop) (timerSource, error) {
	s := &goTimerSource{l: l}
	s.task = func(any) error {
		if l.runTimers() {
			l.onceDone = true
			l.afterCallbacks(true)
		}
		if l.posts.Pending() {
			l.trigger(l.drainFn)
		}
		return l.endCheck()
	}
	return s, nil
}

func (s *goTimerSource) fd() int { return -1 }

func (s *goTimerSource) register(*netpoll.Poller) error { return nil }

func (s *goTimerSource) arm(at time.Time) {
	if s.armed && !at.Before(s.at) {
		return
	}
	s.armed, s.at = true, at
	d := max(time.Until(at), 0)
	if s.t == nil {
		s.t = time.AfterFunc(d, func() { s.l.trigger(s.task) })
		return
	}
	s.t.Reset(d)
}

func (s *goTimerSource) kick() { s.arm(time.Now()) }

func (s *goTimerSource) fired() { s.armed = false }

func (s *goTimerSource) close() error {
	if s.t != nil {
		s.t.Stop()
	}
	return nil
}
