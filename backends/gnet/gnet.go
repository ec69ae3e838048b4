//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"

	"github.com/evhub/evhub/loop"
)

// errShutdown makes Poller.Polling return; it is gnet's own sentinel
// because Polling recognises no other.
var errShutdown = gerrors.ErrEngineShutdown

// Loop is a loop.Loop on gnet's poller. Create it with [New] or
// loop.Open("gnet"). It also implements [loop.EdgeWatcher].
type Loop struct {
	// pmu guards poller against a swap while another goroutine Triggers
	// it: a closed poller's eventfd number may already belong to someone
	// else.
	pmu sync.RWMutex
	// poller runs: Polling, Trigger, the timer source and, with one
	// poller (nested false), every watched fd. See poll for when it is
	// replaced (nested only).
	poller *netpoll.Poller
	// wakeFD is poller's wake-up eventfd (-1 where there is none, or on a
	// gnet without the field); see rewake.
	wakeFD int
	// nested: the watched fds live in a second poller (reg), never
	// Polled, whose fd is registered with poller; a readiness of it is
	// one batch, collected with a non-blocking wait (see doc.go, "Two
	// pollers"). Without it, reg is poller itself.
	nested bool
	// reg holds the watched fds (Add*/Mod*/Delete); regFD is its epoll
	// or kqueue fd.
	reg   *netpoll.Poller
	regFD int
	raw   rawEvents
	ready []readyEvent

	posts  *loop.PostQueue
	sigs   *loop.SignalRelay
	timers *loop.TimerHeap
	tsrc   timerSource
	tfd    int // tsrc.fd(), or -1

	// Trigger tasks and the Polling callback, made once so that neither a
	// Trigger nor a Polling call allocates a closure.
	drainFn   func(any) error
	stopFn    func(any) error
	onceFn    func(any) error
	releaseFn func(any) error
	pollCb    netpoll.PollEventHandler

	stopReq atomic.Bool
	// bw brackets two kinds of batch, during which a Post's wake-up is
	// skipped: I/O callbacks (outside RunOnce), whose end drains the
	// posts, so that a callback that posts — a task woken by readiness —
	// costs no eventfd write, read and extra poll; and the post drain
	// itself, whose end defers what was posted during it to the next
	// batch, so that a function that keeps re-posting itself cannot starve
	// I/O (gnet's chores drain the task queue until it is empty). It also
	// holds the yield after callbacks.
	bw loop.Batch

	// Loop goroutine only from here on.
	fds []*fdRec // by fd number
	// gone is, by fd number, the gen in which its last record was
	// removed; see quarantine.
	gone []uint64
	// gen counts the points at which no collected event is pending
	// dispatch: every Polling start and every chores run (and, nested,
	// every batch).
	gen uint64
	// quarantined lists records made in the gen that removed their fd
	// number's previous record; releasePending: releaseFn is Triggered.
	quarantined    []*fdRec
	releasePending bool

	closed     bool
	running    bool
	inPoll     bool
	inEvent    bool   // in Polling's callback
	once       bool   // RunOnce in progress
	onceID     uint64 // counts RunOnce calls (fdRec.seen)
	onceDone   bool   // this RunOnce has had its iteration: end at the next chores
	onceTrig   bool   // this RunOnce has Triggered its end
	onceIO     bool   // this RunOnce has dispatched I/O
	onceTimers bool   // this RunOnce has run its timers
	batch      uint64 // nested: batches collected (fdRec.born)
	yield      bool   // Gosched after readying (loop.Batch); off only in benchmarks
	yields     int    // Gosched calls after callbacks, for tests
	reuse      bool   // nested: keep poller after Polling returns (rewake); see doc.go
	werr       error
}

// readyEvent is one fd's readiness in a batch.
type readyEvent struct {
	fd int
	ev loop.Events
}

// fdRec is the single poller registration of one fd, shared by all of its
// watchers.
type fdRec struct {
	pa     netpoll.PollAttachment
	edge   bool
	ws     []*ioWatcher // never modified in place: dispatch iterates a snapshot
	kernel loop.Events  // registered with reg
	// quarantined: made while a batch that may hold the previous file's
	// events for this fd number was being dispatched; its events are
	// ignored until releaseQuarantine (see quarantine).
	quarantined bool
	// born (nested) is the batch during which the record was made: that
	// batch was collected before it existed, so an event for its fd number
	// there belongs to a file that had the number before.
	born uint64
	// seen is the RunOnce (onceID) that last dispatched a level-triggered
	// event of this fd: a RunOnce calls each level watcher at most once.
	seen uint64
}

type ioWatcher struct {
	l       *Loop
	rec     *fdRec
	ev      loop.Events
	cb      func(loop.Events)
	stopped bool
	quiet   bool // loop.Quieter: no yield after its callbacks
}

// timerSource wakes the poller when the earliest timer is due.
type timerSource interface {
	// fd is the fd registered with the poller, or -1.
	fd() int
	// register adds the source to a (fresh) poller.
	register(p *netpoll.Poller) error
	// arm makes the source fire no later than at. It reads the clock
	// only when at is earlier than the deadline armed already.
	arm(at time.Time)
	// kick makes the source fire at once.
	kick()
	// fired acknowledges a firing.
	fired()
	close() error
}

// New opens a gnet loop: on Linux one gnet poller (an epoll fd and a
// wake-up eventfd) and a timerfd; on the BSDs and macOS two pollers (see
// the package doc).
func New() (*Loop, error) { return open(!onePoller) }

// open opens a loop with two pollers (nested) or one. One poller needs
// the poller's wake-up eventfd (rewake); a gnet without it gets two.
func open(nested bool) (l *Loop, err error) {
	l = &Loop{timers: loop.NewTimerHeap(), yield: true, nested: nested, tfd: -1, regFD: -1, wakeFD: -1}
	defer func() {
		if err != nil {
			_ = l.release()
			l = nil
		}
	}()
	if l.tsrc, err = newTimerSource(l); err != nil {
		return nil, fmt.Errorf("gnet: timer source: %w", err)
	}
	l.tfd = l.tsrc.fd()
	if !nested {
		if l.poller, err = l.openPoller(); err != nil {
			return nil, err
		}
		if l.wakeFD = wakeFD(l.poller); l.wakeFD < 0 {
			_ = l.poller.Close()
			l.poller, l.nested = nil, true
		}
	}
	if l.nested {
		if l.reg, err = netpoll.OpenPoller(); err != nil {
			return nil, fmt.Errorf("gnet: open poller: %w", err)
		}
		if l.regFD, err = pollerFD(l.reg); err != nil {
			return nil, err
		}
		if l.poller, err = l.openPoller(); err != nil {
			return nil, err
		}
		l.wakeFD = wakeFD(l.poller)
		l.raw = newRawEvents(256)
		l.ready = make([]readyEvent, 0, 256)
	} else {
		l.reg = l.poller
		if l.regFD, err = pollerFD(l.reg); err != nil {
			return nil, err
		}
	}
	l.posts = loop.NewPostQueue(l.wake)
	l.sigs = loop.NewSignalRelay(l.Post)
	l.drainFn = l.drainTask
	l.stopFn = l.stopTask
	l.onceFn = l.onceTask
	l.releaseFn = l.releaseTask
	l.pollCb = l.onEvent
	return l, nil
}

// pollerFD returns the epoll or kqueue fd of p. gnet does not export it;
// it is read (never written) by reflection, and a gnet without the field
// is reported, not guessed at.
func pollerFD(p *netpoll.Poller) (int, error) {
	if fd := intField(p, "fd"); fd >= 0 {
		return fd, nil
	}
	return -1, fmt.Errorf("gnet: netpoll.Poller of this gnet version has no fd field: %w", errors.ErrUnsupported)
}

// wakeFD returns the eventfd through which p's Trigger wakes Polling
// (Linux), or -1.
func wakeFD(p *netpoll.Poller) int { return intField(p, "efd") }

// intField reads the unexported int field name of p, or -1.
func intField(p *netpoll.Poller, name string) int {
	v := reflect.ValueOf(p).Elem().FieldByName(name)
	if !v.IsValid() || v.Kind() != reflect.Int {
		return -1
	}
	return int(v.Int())
}

// openPoller opens the poller that runs, with the timer source and
// (nested) the registration poller registered on it, both
// level-triggered.
func (l *Loop) openPoller() (*netpoll.Poller, error) {
	p, err := netpoll.OpenPoller()
	if err != nil {
		return nil, fmt.Errorf("gnet: open poller: %w", err)
	}
	if l.nested {
		err = p.AddRead(&netpoll.PollAttachment{FD: l.regFD}, false)
	}
	if err == nil {
		err = l.tsrc.register(p)
	}
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("gnet: register with a new poller: %w", err)
	}
	return p, nil
}

// Name returns "gnet".
func (l *Loop) Name() string { return Name }

// Now returns the current time.
func (l *Loop) Now() time.Time { return time.Now() }

// Unsupported reports no missing capability: gnet's poller watches any
// pollable fd.
func (l *Loop) Unsupported() map[loop.Capability]string { return nil }
