//go:build !linux

package evio

import (
	"runtime"

	"github.com/evhub/evhub/loop"
)

// Name is the name the backend registers under.
const Name = "evio"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// Loop is the evio loop type. On this platform the backend does not
// exist, so no Loop can be created.
type Loop struct {
	loop.Loop
}

// New reports that the backend needs Linux, with an error wrapping
// errors.ErrUnsupported: it reads evio's epoll instance, which exists on
// Linux only (evio uses kqueue elsewhere).
func New() (*Loop, error) {
	return nil, &loop.UnsupportedError{
		Backend:    Name,
		Capability: "platform",
		Reason:     "the evio backend drives evio's epoll poller, which exists on Linux only, not " + runtime.GOOS,
	}
}
