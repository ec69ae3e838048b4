package hubexec

import (
	"os"

	"golang.org/x/sys/unix"
)

// openPidfd returns a pidfd for pid (readable once the process exits), or
// -1 where the kernel has none (before Linux 5.3, or a seccomp filter).
func openPidfd(pid int) int {
	fd, err := unix.PidfdOpen(pid, 0) // close-on-exec by definition
	if err != nil {
		return -1
	}
	return fd
}

// waitPidfd waits until the process of pidfd has exited, parked on the Go
// runtime's poller (no thread is held meanwhile), and closes pidfd.
func waitPidfd(pidfd int) error {
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(pidfd), "pidfd") // pollable: non-blocking
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		switch {
		case err == unix.EINTR:
			return false
		case err != nil:
			perr = os.NewSyscallError("poll", err)
			return true
		}
		return n > 0
	})
	if err != nil {
		return err
	}
	return perr
}
