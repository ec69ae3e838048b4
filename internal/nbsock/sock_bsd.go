//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package nbsock

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Socket opens a non-blocking, close-on-exec socket. These systems lack
// SOCK_NONBLOCK; ForkLock keeps a concurrent fork from inheriting it.
func Socket(family, sotype, proto int) (int, error) {
	syscall.ForkLock.RLock()
	s, err := unix.Socket(family, sotype, proto)
	if err == nil {
		unix.CloseOnExec(s)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, err
	}
	if err := unix.SetNonblock(s, true); err != nil {
		unix.Close(s)
		return -1, err
	}
	return s, nil
}

// Accept accepts a connection as a non-blocking, close-on-exec fd.
func Accept(s int) (int, unix.Sockaddr, error) {
	syscall.ForkLock.RLock()
	ns, sa, err := unix.Accept(s)
	if err == nil {
		unix.CloseOnExec(ns)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, nil, err
	}
	if err := unix.SetNonblock(ns, true); err != nil {
		unix.Close(ns)
		return -1, nil, err
	}
	return ns, sa, nil
}

// AcceptSyscall names the accept call in errors: the call made here is
// accept(2) (net names accept4 on the BSDs that have it, accept on Darwin).
const AcceptSyscall = "accept"
