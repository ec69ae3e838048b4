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
	want := int16(unix.POLLERR | unix.POLLHUP)
	if !rstOnly {
		want |= unix.POLLRDHUP
	}
	waitFD(c, d, func(fd int) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		n, err := unix.Poll(p, 0)
		return err != nil || (n > 0 && p[0].Revents&want != 0)
	})
}

// waitFinAcked waits, for at most d, until c's TCP state says its FIN was
// acknowledged: not FIN_WAIT1, CLOSING or LAST_ACK (rule 6).
func waitFinAcked(c net.Conn, d time.Duration) {
	const finWait1, closing, lastAck = 4, 11, 9
	waitFD(c, d, func(fd int) bool {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err != nil || (info.State != finWait1 && info.State != closing && info.State != lastAck)
	})
}

// waitFD asks done about c's fd every 20 µs until it says true, for at
// most d; a conn with no fd gets a millisecond instead.
func waitFD(c net.Conn, d time.Duration, done func(fd int) bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		time.Sleep(time.Millisecond)
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Microsecond) {
		stop := false
		if rc.Control(func(fd uintptr) { stop = done(int(fd)) }) != nil || stop {
			return
		}
	}
}
