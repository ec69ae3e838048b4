package loop

import "sync"

// Queue is a cross-goroutine queue of values for the loop goroutine, the
// shape under [PostQueue] (whose values are functions) and under any
// backend that hands the loop typed events instead of a closure each.
// Push appends under a mutex and calls wake only when the queue goes
// from empty to non-empty, so a loop busy draining pays no wake-up for
// each value; Run takes the whole batch at once and swaps in a spare
// slice, so steady use allocates nothing. wake must be "sticky" (an
// eventfd, a pipe, ev_async, a buffered channel, a Post): a wake that
// arrives while the loop is not polling is seen by its next poll.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	spare  []T
	closed bool
	wake   func()
}

// NewQueue returns a queue that calls wake (if not nil) when values
// arrive.
func NewQueue[T any](wake func()) *Queue[T] { return &Queue[T]{wake: wake} }

// Push queues x. It returns ErrClosed after Close.
func (q *Queue[T]) Push(x T) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	first := len(q.items) == 0
	q.items = append(q.items, x)
	q.mu.Unlock()
	if first && q.wake != nil {
		q.wake()
	}
	return nil
}

// Pending reports whether values are queued.
func (q *Queue[T]) Pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) > 0
}

// Run calls do with each value queued so far, in order, and returns how
// many it took. Values pushed meanwhile wait for the next Run. If do
// panics, the panic goes on up and the values after that one go back to
// the head of the queue (and wake is called), to be taken exactly once.
func (q *Queue[T]) Run(do func(T)) int {
	q.mu.Lock()
	items := q.items
	q.items = q.spare[:0]
	q.mu.Unlock()
	i := 0
	defer func() {
		if i < len(items) {
			q.requeue(items[i+1:])
		}
	}()
	var zero T
	for ; i < len(items); i++ {
		x := items[i]
		items[i] = zero // let the collector have it once done
		do(x)
	}
	q.mu.Lock()
	q.spare = items[:0] // q.items now uses the old spare; recycle this one
	q.mu.Unlock()
	return len(items)
}

// requeue puts rest back at the head of the queue, ahead of later values,
// and wakes the loop so that its next iteration takes them.
func (q *Queue[T]) requeue(rest []T) {
	if len(rest) == 0 {
		return
	}
	q.mu.Lock()
	items := make([]T, 0, len(rest)+len(q.items))
	q.items = append(append(items, rest...), q.items...)
	q.mu.Unlock()
	if q.wake != nil {
		q.wake()
	}
}

// Close makes later Pushes fail with ErrClosed and runs do on whatever
// is still queued, so no value pushed before Close is dropped.
func (q *Queue[T]) Close(do func(T)) {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	for q.Run(do) > 0 {
	}
}
