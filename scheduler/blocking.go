package scheduler

import (
	"context"
	"fmt"
	"log"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Blocking calls off the hub: gevent's threadpool. A task runs on its
// hub's goroutine, so a call that blocks its thread — a plain syscall, a
// cgo call, a channel or a mutex that only another task would release —
// stops every task of the hub (the monitor reports it). Blocking runs such
// a call on a goroutine of its own and parks only the calling task.

// DefaultBlockingLimit is how many functions Blocking runs at once, across
// the process, unless SetBlockingLimit changes it. Each may pin an OS
// thread while it blocks; package net bounds its cgo lookups at 500
// threads for the same reason.
const DefaultBlockingLimit = 500

// blockingPool runs offloaded functions, at most limit at once; the rest
// wait in FIFO order for a slot.
type blockingPool struct {
	mu      sync.Mutex
	limit   int
	running int
	queue   []*blockingJob
}

var pool = blockingPool{limit: DefaultBlockingLimit}

// Job states: queued, then running or abandoned (never both).
const (
	jobQueued int32 = iota
	jobRunning
	jobAbandoned
)

type blockingJob struct {
	fn    func() error
	w     *waiter
	state atomic.Int32
	err   error
	panic *PanicError // fn's panic, re-raised in the caller
}

// SetBlockingLimit sets how many functions Blocking may run at once in
// the process (n ≥ 1) and returns the previous limit. Calls beyond the
// limit wait, parked, for a slot. Lowering the limit does not stop
// functions already running.
func SetBlockingLimit(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("evhub: SetBlockingLimit(%d): must be at least 1", n)
	}
	pool.mu.Lock()
	prev := pool.limit
	pool.limit = n
	var start []*blockingJob
	for pool.running < pool.limit && len(pool.queue) > 0 {
		j := pool.popLocked()
		if j == nil {
			break
		}
		pool.running++
		start = append(start, j)
	}
	pool.mu.Unlock()
	for _, j := range start {
		go pool.work(j)
	}
	return prev, nil
}

// BlockingStats reports how many functions Blocking is running now and
// how many wait for a slot.
func BlockingStats() (running, queued int) {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return pool.running, len(pool.queue)
}

func (p *blockingPool) submit(j *blockingJob) {
	p.mu.Lock()
	if p.running < p.limit {
		p.running++
		p.mu.Unlock()
		go p.work(j)
		return
	}
	p.queue = append(p.queue, j)
	p.mu.Unlock()
}

// popLocked takes the next job that has not been abandoned, or nil.
func (p *blockingPool) popLocked() *blockingJob {
	for len(p.queue) > 0 {
		j := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if j.state.Load() == jobQueued {
			return j
		}
	}
	return nil
}

// work runs j, then the queued jobs, while slots allow.
func (p *blockingPool) work(j *blockingJob) {
	for j != nil {
		if j.state.CompareAndSwap(jobQueued, jobRunning) {
			j.run()
		}
		p.mu.Lock()
		j = nil
		if p.running <= p.limit {
			j = p.popLocked()
		}
		if j == nil {
			p.running--
		}
		p.mu.Unlock()
	}
}

func (j *blockingJob) run() {
	defer j.w.wake()
	defer func() {
		if r := recover(); r != nil {
			j.panic = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	j.err = j.fn()
}

// Blocking calls fn without blocking the hub. From a cooperative task it
// runs fn on another goroutine and parks the task until fn returns, so
// the task's hub keeps running its other tasks; fn's error is returned,
// and a panic in fn is raised again in the task. From an ordinary
// goroutine it simply calls fn (after checking ctx), since parking that
// goroutine blocks no hub.
//
// ctx — and, in a task, the task's own context — ends the wait at once
// with the context's error; fn is not interrupted but runs to its end on
// its goroutine, and its result is discarded, as package net does with a
// cgo lookup whose context ends. fn must therefore not write to the
// caller's variables once the wait may have ended; BlockingValue hands a
// result back safely.
//
// At most SetBlockingLimit functions (DefaultBlockingLimit) run at once
// in the process, since each may pin an OS thread; calls beyond that wait,
// parked, in FIFO order, and a call whose context ends while it waits for
// a slot never runs fn.
func Blocking(ctx context.Context, fn func() error) error {
	if fn == nil {
		return ErrNilFunc
	}
	err, _ := blocking(ctx, fn)
	return err
}

// blocking is Blocking; ran reports whether the error is fn's own.
func blocking(ctx context.Context, fn func() error) (err error, ran bool) {
	if err := ctx.Err(); err != nil {
		return err, false
	}
	t := currentTask()
	if t == nil {
		return fn(), true
	}
	if err := t.ctx.Err(); err != nil {
		return err, false
	}
	j := &blockingJob{fn: fn, w: &waiter{t: t}}
	pool.submit(j)
	if err := j.w.wait(ctx); err != nil {
		if !j.state.CompareAndSwap(jobQueued, jobAbandoned) && j.w.fired.Load() {
			// fn finished as the context ended: its result stands.
			return j.result(), true
		}
		return err, false
	}
	return j.result(), true
}

func (j *blockingJob) result() error {
	if j.panic != nil {
		log.Printf("evhub: function run by Blocking panicked (raised again in the calling task): %v\n%s", j.panic.Value, j.panic.Stack)
		panic(j.panic.Value)
	}
	return j.err
}

// BlockingValue is Blocking for a function that returns a value: the
// value reaches the caller only if fn has finished, so nothing is shared
// with a function that outlives an abandoned wait.
func BlockingValue[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	var zero T
	if fn == nil {
		return zero, ErrNilFunc
	}
	var v T
	err, ran := blocking(ctx, func() error {
		var err error
		v, err = fn()
		return err
	})
	if !ran {
		return zero, err
	}
	return v, err
}

// offload runs fn on its own goroutine, unbounded, and parks the calling
// task until it returns or ctx (or the task's context) ends. It is for
// functions that do not pin a thread while they wait (a pure-Go DNS
// lookup parks on the runtime's netpoller) or that bound themselves (net
// bounds its cgo lookups). It must be called from a task.
func offload(t *Task, ctx context.Context, fn func()) error {
	w := &waiter{t: t}
	go func() {
		defer w.wake()
		fn()
	}()
	return w.wait(ctx)
}
