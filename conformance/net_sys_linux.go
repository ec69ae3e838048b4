package conformance

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// keepAliveOpts are the keep-alive timing options: the idle time
// (SetKeepAlivePeriod), the probe interval and the probe count.
var keepAliveOpts = []sockopt{
	{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, true, false},
	{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, true, false},
	{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, true, false},
}

// keepIdleCheck is what the reference shows after SetKeepAlivePeriod(secs).
func keepIdleCheck(secs int) map[string]int { return map[string]int{"TCP_KEEPIDLE": secs} }

// hasAbstractUnix: Linux has abstract unix socket addresses ("@name").
const hasAbstractUnix = true

// waitQueued waits until bytes sent to c are queued on it, unread.
func waitQueued(t *testing.T, c net.Conn) {
	t.Helper()
	sc, ok := c.(syscallConner)
	require.True(t, ok, "conn %T has no SyscallConn", c)
	rc, err := sc.SyscallConn()
	require.NoError(t, err, "SyscallConn")
	require.Eventually(t, func() bool {
		n := 0
		_ = rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		return n > 0
	}, 5*time.Second, time.Millisecond, "bytes sent never reached the peer's receive queue")
}
