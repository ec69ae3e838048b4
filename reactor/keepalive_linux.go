package reactor

import "golang.org/x/sys/unix"

func setKeepAliveIdle(fd, secs int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
}

func setKeepAliveInterval(fd, secs int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
}

func setKeepAliveCount(fd, n int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n)
}
