package conformance

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waitHangup waits, for at most d, until c's fd reports the events
// rule 6 waits for: the peer's FIN or close (POLLRDHUP, POLLHUP) unless
// rstOnly, or an error or hang-up (POLLERR, POLLHUP, what an RST gives).
func waitHangup(c net.Conn, rstOnly bool, d time.Duration) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		time.Sleep(time.Millisecond)
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	want := int16(unix.POLLERR | unix.POLLHUP)
	if !rstOnly {
		want |= unix.POLLRDHUP
	}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		seen := false
		if rc.Control(func(fd uintptr) {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			if n, err := unix.Poll(p, 0); err != nil || (n > 0 && p[0].Revents&want != 0) {
				seen = true
			}
		}) != nil {
			return
		}
		if seen {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// waitFinAcked waits, for at most d, until c's TCP state says its FIN was
// acknowledged: not FIN_WAIT1, CLOSING or LAST_ACK (rule 6).
func waitFinAcked(c net.Conn, d time.Duration) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		time.Sleep(time.Millisecond)
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	const finWait1, closing, lastAck = 4, 11, 9
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		pending := false
		if rc.Control(func(fd uintptr) {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			pending = err == nil && (info.State == finWait1 || info.State == closing || info.State == lastAck)
		}) != nil || !pending {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}
