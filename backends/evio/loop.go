//go:build linux

package evio

import (
	"errors"
	"sync"

	"github.com/evhub/evhub/loop"
)

// Name is the name the backend registers under.
const Name = "evio"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// unsupported is what evio cannot do, with the reasons (loop.Limited).
var unsupported = map[loop.Capability]string{
	loop.CapWatch: "evio owns its sockets and has no public way to watch an arbitrary fd",
	loop.CapDial:  "evio serves listeners only: it cannot dial out",
	loop.CapPacket: "evio answers a datagram only from inside its Data callback, to its sender, " +
		"and cannot send to an address (net.PacketConn.WriteTo)",
	loop.CapUnixUnreadReset: "evio reads up to 64 KiB ahead of the application, and a unix socket " +
		"resets its peer only for bytes the kernel still holds (AF_UNIX has no SO_LINGER): " +
		"closed with bytes read ahead but never read, the peer reads io.EOF, not ECONNRESET",
}

// driver is loop.Driver under an unexported name, so that embedding it
// adds its Loop methods to Loop without an exported field.
type driver = loop.Driver

// Loop is the evio event loop. Create it with [New] (or loop.Open("evio"));
// see the package documentation for the design. Post, Stop, Timer, Signal,
// Run, RunOnce and Now come from the embedded [loop.Driver]: evio's events
// reach the loop goroutine as posts, so a blocking RunOnce returns once it
// has fired a timer or run a posted function. Its wake-ups go through a Go
// channel, which cannot lose one, unlike evio's Wake (see the package doc).
type Loop struct {
	*driver

	mu       sync.Mutex
	servers  map[*server]struct{} // evio servers still running
	detached map[*stream]struct{} // half-closed streams evio let go
	watchers sync.WaitGroup       // goroutines polling detached streams
	evq      *loop.Queue[event]   // events for the loop goroutine (deliver)
}

var (
	_ loop.Loop         = (*Loop)(nil)
	_ loop.Limited      = (*Loop)(nil)
	_ loop.StreamServer = (*Loop)(nil)
)

// New returns a new, not yet running loop.
func New() (*Loop, error) {
	l := &Loop{
		driver:   loop.NewDriver(loop.DriverConfig{Name: Name}),
		servers:  map[*server]struct{}{},
		detached: map[*stream]struct{}{},
	}
	drain := l.drainEvents
	l.evq = loop.NewQueue[event](func() { _ = l.Post(drain) })
	return l, nil
}

// Name returns "evio".
func (l *Loop) Name() string { return Name }

// Unsupported reports what evio cannot do (loop.Limited).
func (l *Loop) Unsupported() map[loop.Capability]string { return unsupported }

// Watch is unsupported: evio cannot watch an fd it did not accept itself.
// The error wraps errors.ErrUnsupported.
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return nil, loop.Unsupported(l, loop.CapWatch)
}

// Close stops every evio server the loop started (closing their
// connections and listeners), runs the functions posted before it —
// including the Closed events of those connections — stops the signal
// relay and waits until every goroutine the loop started has exited. A
// second Close returns nil. Close must not run while Run executes on
// another goroutine: Stop, wait for Run, then Close.
func (l *Loop) Close() error {
	return l.driver.Close(l.shutdown, nil)
}

// shutdown stops the servers and detached streams and waits for their
// goroutines; it runs before the post queue closes, so that what they post
// on the way out still runs.
func (l *Loop) shutdown() error {
	var errs []error
	l.mu.Lock()
	servers := make([]*server, 0, len(l.servers))
	for sv := range l.servers {
		servers = append(servers, sv)
	}
	l.mu.Unlock()
	for _, sv := range servers {
		if err := sv.shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	detached := make([]*stream, 0, len(l.detached))
	for st := range l.detached {
		detached = append(detached, st)
	}
	l.mu.Unlock()
	for _, st := range detached {
		_ = st.Close()
	}
	l.watchers.Wait()
	return errors.Join(errs...)
}

func (l *Loop) rememberDetached(st *stream) {
	l.mu.Lock()
	l.detached[st] = struct{}{}
	l.mu.Unlock()
}

func (l *Loop) forgetDetached(st *stream) {
	l.mu.Lock()
	delete(l.detached, st)
	l.mu.Unlock()
}
