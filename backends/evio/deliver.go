//go:build linux

package evio

import "sync"

// What the evio goroutine (and a detached stream's watcher) has for the
// StreamHandler reaches the loop goroutine as typed entries of one queue,
// drained by one posted function per batch: delivering an event allocates
// nothing (a closure per event cost 24 to 64 bytes, per Data too), and the
// events of all servers keep the order they were produced in.

type eventKind uint8

const (
	evOpened eventKind = iota
	evData             // p: counted as handed over (consumed), then Data
	evEOF              // Data(st, nil)
	evWritable
	evClosed
	evListenerFailed
)

type event struct {
	kind eventKind
	sv   *server
	st   *stream
	p    []byte
	err  error
}

// eventQueue is the Loop's queue of events.
type eventQueue struct {
	mu     sync.Mutex
	events []event
	spare  []event
	drain  func() // the Loop's drainEvents, posted once per batch
}

// deliver queues e for the loop goroutine. A closed loop runs nothing
// more, and nothing is left to deliver to.
func (l *Loop) deliver(e event) {
	q := &l.evq
	q.mu.Lock()
	q.events = append(q.events, e)
	first := len(q.events) == 1
	q.mu.Unlock()
	if first {
		_ = l.Post(q.drain)
	}
}

// drainEvents runs the events queued so far, in order, on the loop
// goroutine. If a handler panics, the panic goes on up and the events
// after it go back to the head of the queue, to run exactly once.
func (l *Loop) drainEvents() {
	q := &l.evq
	q.mu.Lock()
	evs := q.events
	q.events = q.spare[:0]
	q.mu.Unlock()
	i := 0
	defer func() {
		if i < len(evs) {
			q.requeue(l, evs[i+1:])
		}
	}()
	for ; i < len(evs); i++ {
		e := evs[i]
		evs[i] = event{}
		e.run()
	}
	q.mu.Lock()
	q.spare = evs[:0]
	q.mu.Unlock()
}

// requeue puts rest back ahead of later events and posts a drain.
func (q *eventQueue) requeue(l *Loop, rest []event) {
	if len(rest) == 0 {
		return
	}
	q.mu.Lock()
	evs := make([]event, 0, len(rest)+len(q.events))
	q.events = append(append(evs, rest...), q.events...)
	q.mu.Unlock()
	_ = l.Post(q.drain)
}

func (e *event) run() {
	h := e.sv.h
	switch e.kind {
	case evOpened:
		h.Opened(e.st)
	case evData:
		// Counted as handed over before the handler runs: bytes it takes
		// are its own to account for (it may close the stream inside
		// Data, or panic), and a Close must not take them for unread.
		e.st.consumed(int64(len(e.p)))
		h.Data(e.st, e.p)
		if e.sv.borrow {
			returnRead(e.p)
		}
	case evEOF:
		h.Data(e.st, nil)
	case evWritable:
		h.Writable(e.st)
	case evClosed:
		h.Closed(e.st, e.err)
	case evListenerFailed:
		h.ListenerFailed(e.err)
	}
}
