package scheduler

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/evhub/evhub/loop"
)

// errClosing is what an operation on a closed socket fails with, as in the
// standard library (it is net.ErrClosed, "use of closed network
// connection").
var errClosing = net.ErrClosed

// ErrHubClosed is returned (wrapped in a *net.OpError by socket
// constructors) when a hub is used after Close. errors.Is(err,
// net.ErrClosed) is true for it.
var ErrHubClosed = fmt.Errorf("evhub: hub closed: %w", net.ErrClosed)

// Hub runs one loop.Loop on its own goroutine and builds sockets whose
// blocking calls wait on that loop. Its methods are safe for concurrent
// use.
type Hub struct {
	loop loop.Loop
	edge loop.EdgeWatcher // non-nil when the loop can register edge-triggered

	runDone chan struct{}
	runErr  error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	socks map[*netFD]struct{}
	tasks map[*Task]struct{}

	// The run queue of cooperative tasks (task.go).
	rqMu        sync.Mutex
	rq, rqSpare []*Task
	rqScheduled bool
	runTasksFn  func()
	current     atomic.Pointer[Task]
	resumeStart atomic.Int64 // mono() when the running task was resumed

	monitorStop, monitorDone chan struct{}

	x hubExtras // resolver and fd waits (hubx.go)
}

// New starts a hub on l, which must be new (not running). The hub owns l
// from then on and closes it in Close.
func New(l loop.Loop) (*Hub, error) {
	if l == nil {
		return nil, errors.New("scheduler: New with a nil loop")
	}
	h := &Hub{
		loop:    l,
		runDone: make(chan struct{}),
		socks:   map[*netFD]struct{}{},
		tasks:   map[*Task]struct{}{},
	}
	h.runTasksFn = h.runTasks
	if e, ok := l.(loop.EdgeWatcher); ok {
		h.edge = e
	}
	go func() {
		defer close(h.runDone)
		h.runErr = l.Run()
	}()
	return h, nil
}

// Loop returns the hub's loop. Only Post and Stop may be called on it from
// outside the loop's goroutine; use Post to do anything else.
func (h *Hub) Loop() loop.Loop { return h.loop }

// Backend is the name of the hub's loop backend.
func (h *Hub) Backend() string { return h.loop.Name() }

// Unsupported reports the capabilities the hub's backend lacks, with the
// reasons (see loop.Limited).
func (h *Hub) Unsupported() map[loop.Capability]string { return loop.UnsupportedOf(h.loop) }

// Post runs fn on the hub's loop goroutine.
func (h *Hub) Post(fn func()) error { return h.post(fn) }

func (h *Hub) post(fn func()) error {
	if err := h.loop.Post(fn); err != nil {
		if errors.Is(err, loop.ErrClosed) {
			return ErrHubClosed
		}
		return err
	}
	return nil
}

// call runs fn on the loop goroutine and waits for it. A task of this hub
// is already on the loop goroutine (the loop is suspended while it runs),
// so it runs fn directly.
func (h *Hub) call(fn func()) error {
	t := currentTask()
	if t != nil && t.h == h {
		fn()
		return nil
	}
	w := newWaiter()
	if err := h.post(func() { fn(); w.wake() }); err != nil {
		return err
	}
	// Not w.wait: a cancelled task context must not abandon the wait, the
	// caller relies on fn having run.
	for !w.fired.Load() {
		if t != nil {
			t.park()
		} else {
			<-w.ch
		}
	}
	return nil
}

func (h *Hub) track(fd *netFD) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return ErrHubClosed
	}
	h.socks[fd] = struct{}{}
	return nil
}

func (h *Hub) untrack(fd *netFD) {
	h.mu.Lock()
	delete(h.socks, fd)
	h.mu.Unlock()
}

// ErrCloseFromTask is returned by Close called from one of the hub's own
// tasks, which cannot wait for the hub they run on.
var ErrCloseFromTask = errors.New("evhub: Hub.Close called from a task of the same hub")

// Close cancels the hub's tasks and waits (at most 5 s) for them to
// finish, closes every socket still open on the hub (their blocked calls
// return net.ErrClosed), stops the loop and releases it. It is idempotent;
// later calls return the first call's result.
func (h *Hub) Close() error {
	if t := currentTask(); t != nil && t.h == h {
		return ErrCloseFromTask
	}
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed.Store(true)
		h.mu.Unlock()
		tasksErr := h.closeTasks()
		h.stopMonitor()
		h.x.close()
		h.mu.Lock()
		socks := make([]*netFD, 0, len(h.socks))
		for fd := range h.socks {
			socks = append(socks, fd)
		}
		h.mu.Unlock()
		for _, fd := range socks {
			_ = fd.Close()
		}
		// Stop from inside the loop, so it cannot race with Run starting.
		if err := h.loop.Post(h.loop.Stop); err != nil {
			h.loop.Stop()
		}
		<-h.runDone
		err := h.loop.Close()
		h.closeErr = errors.Join(tasksErr, h.runErr, err)
	})
	return h.closeErr
}

// Closed reports whether Close has been called.
func (h *Hub) Closed() bool { return h.closed.Load() }
