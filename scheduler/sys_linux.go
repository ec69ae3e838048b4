package scheduler

import "golang.org/x/sys/unix"

func setKeepAliveIdle(fd int, secs int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
}

func setKeepAliveInterval(fd int, secs int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
}

func setKeepAliveCount(fd int, n int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n)
}
