//go:build !linux || !uring

package uring

import (
	"runtime"

	"github.com/evhub/evhub/loop"
)

func init() {
	loop.Register(Name, func() (loop.Loop, error) {
		l, err := New()
		if err != nil {
			return nil, err
		}
		return l, nil
	})
}

// Loop is the io_uring loop type. In this build it cannot be created.
type Loop struct {
	loop.Loop
}

// New reports why this build has no io_uring loop, with an error wrapping
// errors.ErrUnsupported.
func New() (*Loop, error) {
	reason := "built without the uring build tag (go build -tags uring)"
	if runtime.GOOS != "linux" {
		reason = "io_uring is Linux's; this is " + runtime.GOOS
	}
	return nil, &loop.UnsupportedError{Backend: Name, Capability: "io_uring", Reason: reason}
}
