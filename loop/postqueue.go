package loop

import "errors"

// ErrNilFunc is returned by Post for a nil function.
var ErrNilFunc = errors.New("loop: Post of a nil func")

// PostQueue is the cross-goroutine function queue every backend shares: a
// [Queue] of functions, each run on the loop goroutine in the order
// posted. Post calls the backend's wake function only when the queue
// goes from empty to non-empty, so a loop busy draining posts pays no
// wake-up syscall for each one. wake must be "sticky" (an eventfd, a
// pipe, ev_async, a buffered channel): a wake that arrives while the loop
// is not polling is seen by its next poll.
type PostQueue struct{ q Queue[func()] }

// NewPostQueue returns a queue that calls wake when work arrives.
func NewPostQueue(wake func()) *PostQueue {
	return &PostQueue{q: Queue[func()]{wake: wake}}
}

// Post queues fn. It returns ErrClosed after Close and ErrNilFunc for nil.
func (q *PostQueue) Post(fn func()) error {
	if fn == nil {
		return ErrNilFunc
	}
	return q.q.Push(fn)
}

// Pending reports whether functions are queued.
func (q *PostQueue) Pending() bool { return q.q.Pending() }

// Run runs the functions queued so far, in order, and returns how many
// ran. Functions they post run on the next call. If one panics, the panic
// goes on up, and the functions after it still run exactly once, on the
// next call.
func (q *PostQueue) Run() int { return q.q.Run(call) }

// Close makes later Posts fail with ErrClosed and runs whatever is still
// queued, so no function posted before Close is dropped.
func (q *PostQueue) Close() { q.q.Close(call) }

func call(fn func()) { fn() }
