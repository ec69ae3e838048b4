package scheduler

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Cooperative tasks: gevent's greenlets on a hub. A task is a coroutine
// (iter.Pull) that only the hub's loop goroutine resumes, from plain Go
// code between loop callbacks (never inside a cgo callback: every backend
// dispatches in Go). While a task runs, the loop goroutine is suspended in
// the resume, so tasks of one hub never run in parallel with each other or
// with the loop's callbacks. A blocking hub call inside a task — a socket
// wait, Sleep, a primitive of this package — parks the task and returns to
// the loop instead of parking a goroutine; the same calls from an ordinary
// goroutine park that goroutine. The wait primitive is the same.

// ErrNilFunc is returned by Go for a nil function.
var ErrNilFunc = errors.New("evhub: Go with a nil function")

// Every live task, by its goroutine's g. liveTasks gates the lookup so
// that goroutine-mode code pays one atomic load.
var (
	liveTasks atomic.Int64
	taskByG   sync.Map // uintptr -> *Task
)

// currentTask returns the task whose goroutine is calling, or nil.
func currentTask() *Task {
	if liveTasks.Load() == 0 {
		return nil
	}
	if t, ok := taskByG.Load(getg()); ok {
		return t.(*Task)
	}
	return nil
}

// Task is a cooperative task on a hub.
type Task struct {
	h      *Hub
	fn     func(ctx context.Context) error
	ctx    context.Context
	cancel context.CancelFunc

	// Loop goroutine (and the task itself) only.
	next     func() (struct{}, bool)
	stop     func()
	yield    func(struct{}) bool
	finished bool

	g      uintptr
	goid   atomic.Pointer[string] // read by the monitor's goroutine
	queued atomic.Bool

	done Event // set when fn has returned
	err  error
}

// PanicError is a task's error when its function panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("evhub: task panicked: %v\n\n%s", e.Value, e.Stack)
}

// Go runs fn as a cooperative task on the hub's loop goroutine. The
// context fn receives is cancelled by Task.Cancel and when the hub closes;
// a task blocked in a hub socket or primitive then returns its error.
func (h *Hub) Go(fn func(ctx context.Context) error) (*Task, error) {
	return h.GoContext(context.Background(), fn)
}

// GoContext is Go with a parent context.
func (h *Hub) GoContext(ctx context.Context, fn func(ctx context.Context) error) (*Task, error) {
	if fn == nil {
		return nil, ErrNilFunc
	}
	if ctx == nil {
		return nil, errors.New("evhub: GoContext with a nil context")
	}
	t := &Task{h: h, fn: fn}
	t.ctx, t.cancel = context.WithCancel(ctx)
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		t.cancel()
		return nil, ErrHubClosed
	}
	h.tasks[t] = struct{}{}
	h.mu.Unlock()
	h.ready(t)
	return t, nil
}

// Context is the task's context.
func (t *Task) Context() context.Context { return t.ctx }

// Cancel cancels the task's context.
func (t *Task) Cancel() { t.cancel() }

// Done reports whether the task has finished.
func (t *Task) Done() bool { return t.done.IsSet() }

// Wait waits until the task finishes and returns its error, or ctx's
// error if ctx is done first. It works from tasks and goroutines alike.
func (t *Task) Wait(ctx context.Context) error {
	if err := t.done.Wait(ctx); err != nil {
		return err
	}
	return t.err
}

// Err is the task's error once it has finished, nil before.
func (t *Task) Err() error {
	if !t.done.IsSet() {
		return nil
	}
	return t.err
}

// wake schedules the task to be resumed; safe from any goroutine.
func (t *Task) wake() { t.h.ready(t) }

// park switches from the task back to the hub until woken. Wake-ups may be
// spurious: callers re-check their condition.
func (t *Task) park() {
	t.yield(struct{}{})
}

func (t *Task) body(yield func(struct{}) bool) {
	t.yield = yield
	t.g = getg()
	id := goid()
	t.goid.Store(&id)
	taskByG.Store(t.g, t)
	liveTasks.Add(1)
	defer func() {
		taskByG.Delete(t.g)
		liveTasks.Add(-1)
	}()
	stop := context.AfterFunc(t.ctx, t.wake)
	defer stop()
	t.err = t.run()
}

func (t *Task) run() (err error) {
	defer recoverPanic(&err)
	return t.fn(t.ctx)
}

// recoverPanic turns a panic into a *PanicError in *err and logs it once.
func recoverPanic(err *error) {
	if r := recover(); r != nil {
		pe := &PanicError{Value: r, Stack: debug.Stack()}
		log.Printf("evhub: task panicked (returned as its error): %v\n%s", r, pe.Stack)
		*err = pe
	}
}

func goid() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return ""
}

// ready queues t to be resumed by the loop goroutine.
func (h *Hub) ready(t *Task) {
	if !t.queued.CompareAndSwap(false, true) {
		return
	}
	h.rqMu.Lock()
	h.rq = append(h.rq, t)
	post := !h.rqScheduled
	h.rqScheduled = true
	h.rqMu.Unlock()
	if post {
		h.postRunTasks()
	}
}

// postRunTasks asks the loop to run the queue; on a closed loop nothing
// will, so the queue is no longer scheduled.
func (h *Hub) postRunTasks() {
	if err := h.post(h.runTasksFn); err != nil {
		h.rqMu.Lock()
		h.rqScheduled = false
		h.rqMu.Unlock()
	}
}

// runTasks resumes the tasks queued so far, in order. Tasks they wake run
// in the next batch, after the loop has polled again, so a task that keeps
// yielding cannot starve I/O.
func (h *Hub) runTasks() {
	h.rqMu.Lock()
	q := h.rq
	h.rq = h.rqSpare[:0]
	h.rqMu.Unlock()
	for i, t := range q {
		q[i] = nil
		t.queued.Store(false)
		h.resume(t)
	}
	h.rqMu.Lock()
	h.rqSpare = q[:0]
	more := len(h.rq) > 0
	if !more {
		h.rqScheduled = false
	}
	h.rqMu.Unlock()
	if more {
		h.postRunTasks()
	}
}

func (h *Hub) resume(t *Task) {
	if t.finished {
		return
	}
	if t.next == nil {
		t.next, t.stop = iter.Pull(t.body)
	}
	h.current.Store(t)
	h.resumeStart.Store(mono())
	_, ok := t.next()
	h.resumeStart.Store(0)
	h.current.Store(nil)
	if !ok {
		t.finished = true
		t.stop()
		t.cancel()
		h.mu.Lock()
		delete(h.tasks, t)
		h.mu.Unlock()
		t.done.Set()
	}
}

// Sleep pauses the calling task (or goroutine) for d. Inside a task it
// switches to the hub; Sleep(0) just yields to the other ready tasks. A
// task whose context is cancelled returns its error early.
func (h *Hub) Sleep(d time.Duration) error {
	t := currentTask()
	if t == nil {
		if d > 0 {
			time.Sleep(d)
		}
		return nil
	}
	if d <= 0 {
		h.ready(t)
		t.park()
		return t.ctx.Err()
	}
	var fired atomic.Bool
	tm := t.h.loop.Timer(d, 0, func() { fired.Store(true); t.wake() })
	for !fired.Load() {
		if err := t.ctx.Err(); err != nil {
			tm.Stop()
			return err
		}
		t.park()
	}
	return nil
}

// closeTasks cancels every task and gives them a bounded time to finish.
func (h *Hub) closeTasks() error {
	h.mu.Lock()
	ts := make([]*Task, 0, len(h.tasks))
	for t := range h.tasks {
		ts = append(ts, t)
	}
	h.mu.Unlock()
	for _, t := range ts {
		t.cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stuck int
	for _, t := range ts {
		if t.done.Wait(ctx) != nil {
			stuck++
		}
	}
	if stuck > 0 {
		return fmt.Errorf("evhub: %d task(s) did not finish within 5s of the hub closing; they were abandoned", stuck)
	}
	return nil
}
