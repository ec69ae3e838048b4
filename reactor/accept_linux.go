package reactor

import "golang.org/x/sys/unix"

// acceptFD accepts a connection as a non-blocking, close-on-exec socket.
// It asks for no peer address (LocalAddr and RemoteAddr ask the kernel
// when called), so an accept allocates nothing: the 112-byte address
// buffer and the unix.Sockaddr that unix.Accept4 makes would be garbage
// at once.
func acceptFD(s int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(s), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
