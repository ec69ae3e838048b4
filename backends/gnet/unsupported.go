//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package gnet

import (
	"runtime"

	"github.com/evhub/evhub/loop"
)

// Loop is the gnet loop type. On this platform gnet's poller does not
// exist, so no Loop can be created.
type Loop struct {
	loop.Loop
}

// New reports that gnet's poller does not support this platform, with an
// error wrapping errors.ErrUnsupported.
func New() (*Loop, error) {
	return nil, &loop.UnsupportedError{
		Backend:    Name,
		Capability: "poller",
		Reason:     "gnet's pkg/netpoll has no poller for " + runtime.GOOS + " (epoll or kqueue only)",
	}
}
