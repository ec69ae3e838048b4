//go:build unix && !aix

package netpoll

import (
	"errors"
	"sync"

	"github.com/evhub/evhub/loop"
)

// Name is the name the backend registers under.
const Name = "netpoll"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// driver is loop.Driver under an unexported name, so that embedding it
// adds its Loop methods to Loop without an exported field.
type driver = loop.Driver

// Loop is the netpoll event loop. Create it with [New] (or loop.Open
// ("netpoll")); see the package documentation for the design. Post, Stop,
// Timer, Signal, Run, RunOnce and Now come from the embedded
// [loop.Driver], whose dispatch hook runs the readiness collected here.
type Loop struct {
	*driver

	// Readiness collected by waiter goroutines, in arrival order.
	readyMu    sync.Mutex
	ready      []*watcher
	readySpare []*watcher

	// Loop goroutine only.
	check      []*watcher // level re-checks (and arming checks) for the next iteration
	checkSpare []*watcher
	batch      []*watcher
	watchers   map[*watcher]struct{}

	waiters sync.WaitGroup // waiter goroutines of every watcher
}

var (
	_ loop.Loop        = (*Loop)(nil)
	_ loop.EdgeWatcher = (*Loop)(nil)
)

// New returns a new, not yet running loop.
func New() (*Loop, error) {
	l := &Loop{watchers: map[*watcher]struct{}{}}
	l.driver = loop.NewDriver(loop.DriverConfig{
		Name:     Name,
		Dispatch: l.dispatch,
		// A scheduled check runs on the next iteration without a wake-up.
		Pending: func() bool { return len(l.check) > 0 },
	})
	return l, nil
}

// Name returns "netpoll".
func (l *Loop) Name() string { return Name }

// Close stops every watcher, runs the functions posted before it, stops the
// signal relay and waits until every goroutine the loop started has exited.
// The caller's fds stay open. A second Close returns nil. Close must not run
// while Run executes on another goroutine: Stop, wait for Run, then Close.
func (l *Loop) Close() error {
	return l.driver.Close(nil, l.release)
}

// release stops every watcher and waits for their waiter goroutines; it
// runs after the last posted function.
func (l *Loop) release() error {
	var errs []error
	for w := range l.watchers {
		if err := w.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	l.waiters.Wait()
	l.readyMu.Lock()
	clear(l.ready)
	l.ready = nil
	l.readyMu.Unlock()
	clear(l.check)
	l.check = nil
	return errors.Join(errs...)
}
