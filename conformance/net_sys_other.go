//go:build !linux

package conformance

import (
	"net"
	"testing"
	"time"
)

// keepIdleOpt: the keep-alive idle option has a different name on each
// BSD (TCP_KEEPALIVE on Darwin, none on OpenBSD); its value is not
// compared here.
var keepIdleOpt []sockopt

func keepIdleCheck(int) map[string]int { return nil }

// hasAbstractUnix: abstract unix socket addresses are Linux-only.
const hasAbstractUnix = false

// waitQueued waits until bytes sent to c are queued on it, unread: without
// a portable ioctl here, by giving loopback ample time.
func waitQueued(t *testing.T, c net.Conn) { time.Sleep(100 * time.Millisecond) }
