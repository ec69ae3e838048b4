package loop

import (
	"errors"
	"sync"
)

// ErrNilFunc is returned by Post for a nil function.
var ErrNilFunc = errors.New("loop: Post of a nil func")

// PostQueue is the cross-goroutine function queue every backend shares.
// Post appends under a mutex and calls the backend's wake function only
// when the queue goes from empty to non-empty, so a loop busy draining
// posts pays no wake-up syscall for each one. wake must be "sticky" (an
// eventfd, a pipe, ev_async, a buffered channel): a wake that arrives while
// the loop is not polling is seen by its next poll.
type PostQueue struct {
	mu     sync.Mutex
	fns    []func()
	spare  []func()
	closed bool
	wake   func()
}

// NewPostQueue returns a queue that calls wake when work arrives.
func NewPostQueue(wake func()) *PostQueue {
	return &PostQueue{wake: wake}
}

// Post queues fn. It returns ErrClosed after Close and ErrNilFunc for nil.
func (q *PostQueue) Post(fn func()) error {
	if fn == nil {
		return ErrNilFunc
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	first := len(q.fns) == 0
	q.fns = append(q.fns, fn)
	q.mu.Unlock()
	if first && q.wake != nil {
		q.wake()
	}
	return nil
}

// Pending reports whether functions are queued.
func (q *PostQueue) Pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fns) > 0
}

// Run runs the functions queued so far, in order, and returns how many
// ran. Functions they post run on the next call.
func (q *PostQueue) Run() int {
	q.mu.Lock()
	fns := q.fns
	q.fns = q.spare[:0]
	q.mu.Unlock()
	i := 0
	defer func() {
		if i < len(fns) {
			// fns[i] panicked: the panic goes on up, but the functions
			// after it must still run exactly once.
			q.requeue(fns[i+1:])
		}
	}()
	for ; i < len(fns); i++ {
		fn := fns[i]
		fns[i] = nil
		fn()
	}
	q.mu.Lock()
	q.spare = fns[:0] // q.fns now uses the old spare; recycle this one
	q.mu.Unlock()
	return len(fns)
}

// requeue puts rest back at the head of the queue, ahead of later posts,
// and wakes the loop so that its next iteration runs them.
func (q *PostQueue) requeue(rest []func()) {
	if len(rest) == 0 {
		return
	}
	q.mu.Lock()
	fns := make([]func(), 0, len(rest)+len(q.fns))
	fns = append(append(fns, rest...), q.fns...)
	q.fns = fns
	q.mu.Unlock()
	if q.wake != nil {
		q.wake()
	}
}

// Close makes later Posts fail with ErrClosed and runs whatever is still
// queued, so no function posted before Close is dropped.
func (q *PostQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	for q.Run() > 0 {
	}
}
