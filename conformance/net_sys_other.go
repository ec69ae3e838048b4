//go:build !linux

package conformance

import (
	"net"
	"testing"
	"time"
)

// keepIdleCheck: the keep-alive idle option has a different name on each
// BSD (TCP_KEEPALIVE on Darwin, none on OpenBSD); its value is not
// compared here. keepAliveOpts (the probe interval and count) are in
// keepalive_bsd.go, where the platform has them.

func keepIdleCheck(int) map[string]int { return nil }

// hasAbstractUnix: abstract unix socket addresses are Linux-only.
const hasAbstractUnix = false

// waitQueued waits until bytes sent to c are queued on it, unread: without
// a portable ioctl here, by giving loopback ample time.
func waitQueued(t *testing.T, c net.Conn) { time.Sleep(100 * time.Millisecond) }
