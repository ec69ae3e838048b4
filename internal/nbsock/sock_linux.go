package nbsock

import "golang.org/x/sys/unix"

// Socket opens a non-blocking, close-on-exec socket in one syscall.
func Socket(family, sotype, proto int) (int, error) {
	return unix.Socket(family, sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
}

// Accept accepts a connection as a non-blocking, close-on-exec fd.
func Accept(s int) (int, unix.Sockaddr, error) {
	return unix.Accept4(s, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
}

// AcceptSyscall names the accept call in errors, as net does.
const AcceptSyscall = "accept4"
