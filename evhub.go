// Package evhub brings gevent's idea to Go: one narrow event-loop
// interface ([loop.Loop]), several interchangeable loops behind it (the Go
// runtime's netpoller, gnet, evio, libev through cgo), and one scheduler
// above it that turns readiness into ordinary blocking Go code:
// net.Listener, net.Conn and net.PacketConn values that behave exactly like
// the standard library's, whichever loop carries them.
//
// Every backend that needs no cgo is linked in (package backends/all);
// the default is the best one that runs here (gnet wherever gnet's poller
// builds, netpoll elsewhere). A build tag that names a backend makes it
// the default (-tags cev links libev through cgo and picks it; -tags evio
// picks evio); EVHUB_BACKEND=name picks one at run time; or open one
// explicitly:
//
//	hub, err := evhub.Open("gnet")
//	if err != nil { ... }
//	defer hub.Close()
//	ln, err := hub.Listen("tcp", "127.0.0.1:0")
//
// The package-level Listen, Dial, DialContext and ListenPacket use the
// default hub ([Default]).
package evhub

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// Hub is a running event loop with the sockets and cooperative tasks built
// on it. See scheduler.Hub.
type Hub = scheduler.Hub

// The cooperative-task API (gevent's greenlets and its primitives); see
// package scheduler. Every primitive works from tasks and from ordinary
// goroutines alike.
type (
	// Task is a cooperative task started by Hub.Go.
	Task = scheduler.Task
	// Event is a flag tasks and goroutines wait for.
	Event = scheduler.Event
	// Semaphore bounds concurrency.
	Semaphore = scheduler.Semaphore
	// Group runs tasks together: Wait for all, first error cancels the rest.
	Group = scheduler.Group
	// PanicError is the error of a task that panicked.
	PanicError = scheduler.PanicError
	// MonitorReport describes a task that blocked its hub.
	MonitorReport = scheduler.MonitorReport
)

// Queue is a bounded FIFO queue for tasks and goroutines.
type Queue[T any] = scheduler.Queue[T]

// AsyncResult is a value that will be available later.
type AsyncResult[T any] = scheduler.AsyncResult[T]

// NewQueue returns a queue holding at most capacity items.
func NewQueue[T any](capacity int) (*Queue[T], error) { return scheduler.NewQueue[T](capacity) }

// NewSemaphore returns a semaphore with n slots.
func NewSemaphore(n int) (*Semaphore, error) { return scheduler.NewSemaphore(n) }

// EnvMonitor turns on the blocking monitor of every hub Open starts: a
// duration ("100ms"), or "1"/"true" for 100ms. A task that keeps its hub
// from its loop for longer is reported once, with its stack, on the log.
const EnvMonitor = "EVHUB_MONITOR"

func monitorThreshold() (time.Duration, error) {
	v := os.Getenv(EnvMonitor)
	switch strings.ToLower(v) {
	case "", "0", "false", "off":
		return 0, nil
	case "1", "true", "on":
		return 100 * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("evhub: %s=%q: want a positive duration such as 100ms, or 1/true", EnvMonitor, v)
	}
	return d, nil
}

// ErrHubClosed is wrapped by every call on a closed hub;
// errors.Is(err, net.ErrClosed) holds for it too.
var ErrHubClosed = scheduler.ErrHubClosed

// EnvBackend is the environment variable that overrides the default
// backend at run time.
const EnvBackend = "EVHUB_BACKEND"

// Backends returns the names of the compiled-in backends, sorted.
func Backends() []string { return loop.Names() }

// DefaultBackend is the backend the default hub uses: EVHUB_BACKEND if
// set, else the one a build tag names, else the first backend of
// all.Preference that opens on this machine (gnet on Linux, macOS and the
// BSDs; netpoll where gnet's poller does not exist).
func DefaultBackend() string {
	if name := os.Getenv(EnvBackend); name != "" {
		return name
	}
	return all.Default()
}

// Open starts a new hub on the named backend. An unknown name is an error
// (a *loop.UnknownBackendError) that lists the compiled-in backends.
//
// With EVHUB_MONITOR set, the hub's blocking monitor is started.
func Open(backend string) (*Hub, error) {
	threshold, err := monitorThreshold()
	if err != nil {
		return nil, err
	}
	l, err := loop.Open(backend)
	if err != nil {
		return nil, err
	}
	h, err := scheduler.New(l)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("evhub: open %s: %w", backend, err)
	}
	if threshold > 0 {
		if err := h.StartMonitor(threshold, nil); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	return h, nil
}

var (
	defaultOnce sync.Once
	defaultHub  *Hub
	defaultErr  error
)

// DefaultHub returns the process-wide default hub, opening it on first use
// on [DefaultBackend], and the error if it could not be opened (for
// instance, EVHUB_BACKEND names a backend that is not compiled in).
func DefaultHub() (*Hub, error) {
	defaultOnce.Do(func() {
		defaultHub, defaultErr = Open(DefaultBackend())
		if defaultErr != nil {
			defaultErr = fmt.Errorf("evhub: default hub (%s=%q): %w", EnvBackend, os.Getenv(EnvBackend), defaultErr)
		}
	})
	return defaultHub, defaultErr
}

// Default returns the process-wide default hub, or nil if it could not be
// opened; [DefaultHub] says why, and the package-level functions return
// that error.
func Default() *Hub {
	h, _ := DefaultHub()
	return h
}

// Listen announces on the default hub, like net.Listen.
func Listen(network, address string) (net.Listener, error) {
	h, err := DefaultHub()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return h.Listen(network, address)
}

// Dial connects through the default hub, like net.Dial.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// DialContext connects through the default hub, like
// net.Dialer.DialContext.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	h, err := DefaultHub()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	return h.DialContext(ctx, network, address)
}

// ListenPacket announces a datagram socket on the default hub, like
// net.ListenPacket.
func ListenPacket(network, address string) (net.PacketConn, error) {
	h, err := DefaultHub()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return h.ListenPacket(network, address)
}
