//go:build unix && !aix

package netpoll

import "github.com/evhub/evhub/loop"

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
	poller // the readiness machinery: watch_linux.go, watch_other.go
}

var (
	_ loop.Loop        = (*Loop)(nil)
	_ loop.EdgeWatcher = (*Loop)(nil)
)

// New returns a new, not yet running loop.
func New() (*Loop, error) {
	l := &Loop{}
	l.driver = loop.NewDriver(loop.DriverConfig{
		Name:     Name,
		Dispatch: l.dispatch,
		Pending:  l.pending,
	})
	if err := l.initPoller(); err != nil {
		_ = l.driver.Close(nil, nil)
		return nil, err
	}
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
