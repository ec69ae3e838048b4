package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Hub-aware synchronisation: each primitive works from cooperative tasks
// (the task switches to its hub) and from ordinary goroutines (the
// goroutine parks) alike, follows the standard library's conventions
// (a context for cancellation, errors as values), and needs no hub of its
// own: zero values are ready to use unless a constructor says otherwise.

// waiter is one parked task or goroutine.
type waiter struct {
	t     *Task
	ch    chan struct{}
	fired atomic.Bool
}

func newWaiter() *waiter {
	if t := currentTask(); t != nil {
		return &waiter{t: t}
	}
	return &waiter{ch: make(chan struct{}, 1)}
}

func (w *waiter) wake() {
	if !w.fired.CompareAndSwap(false, true) {
		return
	}
	if w.t != nil {
		w.t.wake()
		return
	}
	w.ch <- struct{}{}
}

// wait parks until wake, ctx is done, or (in a task) the task's context is
// cancelled. A nil error means it was woken.
func (w *waiter) wait(ctx context.Context) error {
	if w.t == nil {
		select {
		case <-w.ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, w.t.wake)
		defer stop()
	}
	for !w.fired.Load() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.t.ctx.Err(); err != nil {
			return err
		}
		w.t.park()
	}
	return nil
}

// waitList is a FIFO of waiters guarded by its owner's mutex.
type waitList struct{ ws []*waiter }

func (l *waitList) add(w *waiter) { l.ws = append(l.ws, w) }

func (l *waitList) remove(w *waiter) {
	for i, x := range l.ws {
		if x == w {
			l.ws = append(l.ws[:i], l.ws[i+1:]...)
			return
		}
	}
}

// popAll empties the list and returns its waiters.
func (l *waitList) popAll() []*waiter {
	ws := l.ws
	l.ws = nil
	return ws
}

// pop returns the first waiter, or nil.
func (l *waitList) pop() *waiter {
	if len(l.ws) == 0 {
		return nil
	}
	w := l.ws[0]
	l.ws[0] = nil
	l.ws = l.ws[1:]
	return w
}

// Event is a flag that tasks and goroutines can wait for, like gevent's
// Event: Set wakes every waiter; Clear resets it.
type Event struct {
	mu      sync.Mutex
	set     bool
	waiters waitList
}

// Set sets the flag and wakes every waiter.
func (e *Event) Set() {
	e.mu.Lock()
	e.set = true
	ws := e.waiters.popAll()
	e.mu.Unlock()
	for _, w := range ws {
		w.wake()
	}
}

// Clear resets the flag.
func (e *Event) Clear() {
	e.mu.Lock()
	e.set = false
	e.mu.Unlock()
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.set
}

// Wait blocks until the flag is set or ctx is done. An already-done ctx
// returns its error at once.
func (e *Event) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	if e.set {
		e.mu.Unlock()
		return nil
	}
	w := newWaiter()
	e.waiters.add(w)
	e.mu.Unlock()
	if err := w.wait(ctx); err != nil {
		e.mu.Lock()
		e.waiters.remove(w)
		e.mu.Unlock()
		return err
	}
	return nil
}

// ErrQueueClosed is returned by Queue.Put after Close, and by Get once a
// closed queue is empty.
var ErrQueueClosed = errors.New("evhub: queue closed")

// Queue is a bounded FIFO queue for tasks and goroutines.
type Queue[T any] struct {
	mu      sync.Mutex
	items   []T
	head    int
	n       int
	closed  bool
	getters waitList
	putters waitList
}

// NewQueue returns a queue holding at most capacity items (capacity ≥ 1).
func NewQueue[T any](capacity int) (*Queue[T], error) {
	if capacity < 1 {
		return nil, fmt.Errorf("evhub: NewQueue capacity %d: must be at least 1", capacity)
	}
	return &Queue[T]{items: make([]T, capacity)}, nil
}

// Len is the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Cap is the queue's capacity.
func (q *Queue[T]) Cap() int { return len(q.items) }

// Put adds v, waiting while the queue is full.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrQueueClosed
		}
		if q.n < len(q.items) {
			q.items[(q.head+q.n)%len(q.items)] = v
			q.n++
			w := q.getters.pop()
			q.mu.Unlock()
			if w != nil {
				w.wake()
			}
			return nil
		}
		w := newWaiter()
		q.putters.add(w)
		q.mu.Unlock()
		if err := w.wait(ctx); err != nil {
			q.putters.abandon(&q.mu, w)
			return err
		}
	}
}

// Get removes and returns the oldest item, waiting while the queue is
// empty.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	var zero T
	for {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		q.mu.Lock()
		if q.n > 0 {
			v := q.items[q.head]
			q.items[q.head] = zero
			q.head = (q.head + 1) % len(q.items)
			q.n--
			w := q.putters.pop()
			q.mu.Unlock()
			if w != nil {
				w.wake()
			}
			return v, nil
		}
		if q.closed {
			q.mu.Unlock()
			return zero, ErrQueueClosed
		}
		w := newWaiter()
		q.getters.add(w)
		q.mu.Unlock()
		if err := w.wait(ctx); err != nil {
			q.getters.abandon(&q.mu, w)
			return zero, err
		}
	}
}

// abandon removes w, which gave up waiting, from the list guarded by mu;
// if w had been woken already, the wake-up passes to the next waiter so
// that none is lost.
func (l *waitList) abandon(mu *sync.Mutex, w *waiter) {
	mu.Lock()
	l.remove(w)
	var next *waiter
	if w.fired.Load() {
		next = l.pop()
	}
	mu.Unlock()
	if next != nil {
		next.wake()
	}
}

// Close makes Put fail and lets Get drain what is queued, then fail.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	ws := append(q.getters.popAll(), q.putters.popAll()...)
	q.mu.Unlock()
	for _, w := range ws {
		w.wake()
	}
}

// AsyncResult is a value that will be available later, like gevent's
// AsyncResult: Set or SetError once; Get waits for it.
type AsyncResult[T any] struct {
	mu    sync.Mutex
	ready bool
	val   T
	err   error
	ev    Event
}

// ErrAlreadySet is returned when an AsyncResult is set twice.
var ErrAlreadySet = errors.New("evhub: AsyncResult already set")

// Set stores v and wakes every Get.
func (r *AsyncResult[T]) Set(v T) error { return r.settle(v, nil) }

// SetError stores err as the result's error.
func (r *AsyncResult[T]) SetError(err error) error {
	if err == nil {
		return errors.New("evhub: AsyncResult.SetError(nil)")
	}
	var zero T
	return r.settle(zero, err)
}

func (r *AsyncResult[T]) settle(v T, err error) error {
	r.mu.Lock()
	if r.ready {
		r.mu.Unlock()
		return ErrAlreadySet
	}
	r.ready, r.val, r.err = true, v, err
	r.mu.Unlock()
	r.ev.Set()
	return nil
}

// Ready reports whether the result is set.
func (r *AsyncResult[T]) Ready() bool { return r.ev.IsSet() }

// Get waits for the result.
func (r *AsyncResult[T]) Get(ctx context.Context) (T, error) {
	if err := r.ev.Wait(ctx); err != nil {
		var zero T
		return zero, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.val, r.err
}

// Semaphore limits concurrency among tasks and goroutines.
type Semaphore struct {
	mu      sync.Mutex
	size    int
	used    int
	waiters waitList
}

// NewSemaphore returns a semaphore with n slots (n ≥ 1).
func NewSemaphore(n int) (*Semaphore, error) {
	if n < 1 {
		return nil, fmt.Errorf("evhub: NewSemaphore(%d): must be at least 1", n)
	}
	return &Semaphore{size: n}, nil
}

// Acquire takes a slot, waiting while none is free.
func (s *Semaphore) Acquire(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.used < s.size {
			s.used++
			s.mu.Unlock()
			return nil
		}
		w := newWaiter()
		s.waiters.add(w)
		s.mu.Unlock()
		if err := w.wait(ctx); err != nil {
			s.waiters.abandon(&s.mu, w)
			return err
		}
	}
}

// TryAcquire takes a slot if one is free.
func (s *Semaphore) TryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used < s.size {
		s.used++
		return true
	}
	return false
}

// Release frees a slot. Releasing more than was acquired is an error.
func (s *Semaphore) Release() error {
	s.mu.Lock()
	if s.used == 0 {
		s.mu.Unlock()
		return errors.New("evhub: Semaphore.Release without Acquire")
	}
	s.used--
	w := s.waiters.pop()
	s.mu.Unlock()
	if w != nil {
		w.wake()
	}
	return nil
}

// Group runs tasks together: Wait waits for all of them and returns the
// first error; the first error cancels the others' context (as
// golang.org/x/sync/errgroup does, for cooperative tasks).
type Group struct {
	h      *Hub
	ctx    context.Context
	cancel context.CancelCauseFunc
	limit  *Semaphore

	mu      sync.Mutex
	running int
	err     error
	idle    Event
}

// NewGroup returns a group whose tasks run on h with a context derived
// from ctx. limit > 0 bounds how many run at once (gevent's Pool): Go
// waits for a free slot; limit ≤ 0 means no bound.
func (h *Hub) NewGroup(ctx context.Context, limit int) *Group {
	g := &Group{h: h}
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	if limit > 0 {
		g.limit, _ = NewSemaphore(limit)
	}
	g.idle.Set()
	return g
}

// Context is the context the group's tasks receive.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts fn as a task of the group, waiting for a slot if the group is
// limited.
func (g *Group) Go(fn func(ctx context.Context) error) error {
	if fn == nil {
		return ErrNilFunc
	}
	if g.limit != nil {
		if err := g.limit.Acquire(g.ctx); err != nil {
			return err
		}
	}
	g.mu.Lock()
	g.running++
	g.idle.Clear()
	g.mu.Unlock()
	_, err := g.h.GoContext(g.ctx, func(ctx context.Context) (err error) {
		defer func() { g.finish(err) }()
		defer recoverPanic(&err)
		return fn(ctx)
	})
	if err != nil {
		g.finish(nil)
		return err
	}
	return nil
}

func (g *Group) finish(err error) {
	if g.limit != nil {
		_ = g.limit.Release()
	}
	g.mu.Lock()
	if err != nil && g.err == nil {
		g.err = err
		g.cancel(err)
	}
	g.running--
	idle := g.running == 0
	g.mu.Unlock()
	if idle {
		g.idle.Set()
	}
}

// Cancel cancels every task of the group.
func (g *Group) Cancel() { g.cancel(context.Canceled) }

// Wait waits until every task of the group has finished and returns the
// first error, or ctx's error if ctx is done first.
func (g *Group) Wait(ctx context.Context) error {
	if err := g.idle.Wait(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
