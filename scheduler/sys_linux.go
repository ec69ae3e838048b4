package scheduler

import "golang.org/x/sys/unix"

// sysSocket opens a non-blocking, close-on-exec socket in one syscall.
func sysSocket(family, sotype, proto int) (int, error) {
	return unix.Socket(family, sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
}

func sysAccept(s int) (int, unix.Sockaddr, error) {
	return unix.Accept4(s, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
}

func setKeepAliveIdle(fd int, secs int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
}

func setKeepAliveInterval(fd int, secs int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
}

func setKeepAliveCount(fd int, n int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n)
}

// acceptSyscall names the accept call in errors, as net does ("accept4").
const acceptSyscall = "accept4"
