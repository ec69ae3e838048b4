//go:build !linux

package conformance

import (
	"net"
	"time"
)

// waitHangup sleeps 1 ms off Linux, which has no POLLRDHUP (rule 6).
func waitHangup(net.Conn, bool, time.Duration) { time.Sleep(time.Millisecond) }

// waitFinAcked sleeps 1 ms off Linux (rule 6).
func waitFinAcked(net.Conn, time.Duration) { time.Sleep(time.Millisecond) }
