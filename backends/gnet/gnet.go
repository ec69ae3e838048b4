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
	// pmu guards outer against a swap while another goroutine Triggers
	// it: a closed poller's eventfd number may already belong to someone
	// else.
	pmu sync.RWMutex
	// outer is the poller that runs: Polling, Trigger, the timerfd and the
	// inner poller's fd. See poll for when it is replaced.
	outer *netpoll.Poller
	// wakeFD is outer's wake-up eventfd (-1 where there is none, or on a
	// gnet without the field); see rewake.
	wakeFD int
	// inner holds the watched fds (Add*/Mod*/Delete) and is never Polled:
	// its fd is registered with outer, and a readiness of it is one batch,
	// collected with a non-blocking wait. Registrations, edge state
	// included, thus outlive the replacement of outer.
	inner   *netpoll.Poller
	innerFD int
	raw     rawEvents
	ready   []readyEvent

	posts  *loop.PostQueue
	sigs   *loop.SignalRelay
	timers *loop.TimerHeap
	tsrc   timerSource
	tfd    int // tsrc.fd(), or -1

	// Trigger tasks and the Polling callback, made once so that neither a
	// Trigger nor a Polling call allocates a closure.
	drainFn func(any) error
	stopFn  func(any) error
	onceFn  func(any) error
	pollCb  netpoll.PollEventHandler

	stopReq atomic.Bool
	// bw brackets two kinds of batch, during which a Post's wake-up is
	// skipped: an I/O batch's callbacks (outside RunOnce), whose end
	// drains the posts (dispatch), so that a callback that posts — a task
	// woken by readiness — costs no eventfd write, read and extra poll;
	// and the post drain itself, whose end defers what was posted during
	// it to the next batch, so that a function that keeps re-posting
	// itself cannot starve I/O (gnet's chores drain the task queue until
	// it is empty). It also holds the yield after a batch.
	bw loop.Batch

	// Loop goroutine only from here on.
	fds        []*fdRec // by fd number
	closed     bool
	running    bool
	inPoll     bool
	once       bool // RunOnce in progress
	onceDone   bool // this RunOnce has had its iteration: end at the next chores
	onceTrig   bool // this RunOnce has Triggered its end
	onceIO     bool // this RunOnce has dispatched its I/O batch
	onceTimers bool // this RunOnce has run its timers
	batch      uint64
	yield      bool // Gosched after readying (loop.Batch); off only in benchmarks
	reuse      bool // keep outer after Polling returns (rewake); off by default, see doc.go
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
	kernel loop.Events  // registered with the inner poller
	// born is the batch during which the record was made: that batch was
	// collected before it existed, so an event for its fd number there
	// belongs to a file that had the number before.
	born uint64
}

type ioWatcher struct {
	l       *Loop
	rec     *fdRec
	ev      loop.Events
	cb      func(loop.Events)
	stopped bool
}

// timerSource wakes the poller when the earliest timer is due.
type timerSource interface {
	// fd is the fd registered with the outer poller, or -1.
	fd() int
	// register adds the source to a (fresh) outer poller.
	register(p *netpoll.Poller) error
	// arm makes the source fire no later than now+d.
	arm(now time.Time, d time.Duration)
	// kick makes the source fire at once.
	kick()
	// fired acknowledges a firing.
	fired()
	close() error
}

// New opens a gnet loop: two gnet pollers (each an epoll or kqueue fd plus
// a wake-up eventfd or pipe) and, on Linux, a timerfd.
func New() (l *Loop, err error) {
	l = &Loop{timers: loop.NewTimerHeap(), yield: true, reuse: false, tfd: -1, innerFD: -1, wakeFD: -1}
	defer func() {
		if err != nil {
			_ = l.release()
			l = nil
		}
	}()
	if l.inner, err = netpoll.OpenPoller(); err != nil {
		return nil, fmt.Errorf("gnet: open poller: %w", err)
	}
	if l.innerFD, err = pollerFD(l.inner); err != nil {
		return nil, err
	}
	if l.tsrc, err = newTimerSource(l); err != nil {
		return nil, fmt.Errorf("gnet: timer source: %w", err)
	}
	l.tfd = l.tsrc.fd()
	if l.outer, err = l.openOuter(); err != nil {
		return nil, err
	}
	l.wakeFD = wakeFD(l.outer)
	l.raw = newRawEvents(256)
	l.ready = make([]readyEvent, 0, 256)
	l.posts = loop.NewPostQueue(l.wake)
	l.sigs = loop.NewSignalRelay(l.Post)
	l.drainFn = l.drainTask
	l.stopFn = l.stopTask
	l.onceFn = l.onceTask
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

// openOuter opens an outer poller with the inner poller and the timer
// source registered, both level-triggered.
func (l *Loop) openOuter() (*netpoll.Poller, error) {
	p, err := netpoll.OpenPoller()
	if err != nil {
		return nil, fmt.Errorf("gnet: open poller: %w", err)
	}
	if err = p.AddRead(&netpoll.PollAttachment{FD: l.innerFD}, false); err == nil {
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
