//go:build !linux

package conformance

import (
	"net"
	"time"
)

// waitHangup sleeps 1 ms off Linux, which has no POLLRDHUP (rule 6).
func waitHangup(net.Conn, bool, time.Duration) { time.Sleep(time.Millisecond) }
