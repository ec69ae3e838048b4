//go:build linux

package evio

import "github.com/evhub/evhub/loop"

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

// deliver queues e for the loop goroutine: the Loop's loop.Queue of
// events, whose wake-up posts one drainEvents per batch. A closed loop
// runs nothing more, and nothing is left to deliver to.
func (l *Loop) deliver(e event) { _ = l.evq.Push(e) }

// drainEvents runs the events queued so far, in order, on the loop
// goroutine. If a handler panics, the panic goes on up and the events
// after it go back to the head of the queue, to run exactly once.
func (l *Loop) drainEvents() { l.evq.Run(runEvent) }

func runEvent(e event) { e.run() }

// runData hands a Data event's bytes to the handler. They are counted as
// handed over before the handler runs: bytes it takes are its own to
// account for (it may close the stream inside Data, or panic), and a
// Close must not take them for unread. So from then until the handler
// has them, a Close from another goroutine sees neither unread bytes in
// the handler nor bytes in flight here; the stream's duplicate stays
// open meanwhile (holdData), so that the handler can still make that
// close a reset (Control) when the bytes reach it after the Close.
func (e *event) runData(h loop.StreamHandler) {
	st := e.st
	st.holdData(true)
	defer st.holdData(false)
	st.consumed(int64(len(e.p)))
	if inData != nil {
		inData(st)
	}
	h.Data(st, e.p)
	if e.sv.borrow {
		returnRead(e.p)
	}
}

// inData, set only by tests, runs between a Data event's consumed and
// its handler.
var inData func(st *stream)

func (e *event) run() {
	h := e.sv.h
	switch e.kind {
	case evOpened:
		h.Opened(e.st)
	case evData:
		e.runData(h)
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
