//go:build !unix || aix

package netpoll

import (
	"runtime"

	"github.com/evhub/evhub/loop"
)

// Name is the name the backend registers under.
const Name = "netpoll"

func init() {
	loop.Register(Name, func() (loop.Loop, error) { return New() })
}

// Loop is the netpoll loop type. On this platform no Loop can be created.
type Loop struct {
	loop.Loop
}

// New reports that the backend does not run here, with an error wrapping
// errors.ErrUnsupported: it watches an fd by duplicating it with
// F_DUPFD_CLOEXEC and waiting through os.File on the runtime's poller,
// which needs a Unix with that fcntl.
func New() (*Loop, error) {
	return nil, &loop.UnsupportedError{
		Backend:    Name,
		Capability: "platform",
		Reason:     "the netpoll backend needs a Unix whose runtime poller takes an os.File and has F_DUPFD_CLOEXEC, not " + runtime.GOOS,
	}
}
