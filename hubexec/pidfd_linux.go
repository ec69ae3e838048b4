package hubexec

import "golang.org/x/sys/unix"

// openPidfd returns a pidfd for pid (readable once the process exits), or
// -1 where the kernel has none (before Linux 5.3, or a seccomp filter).
func openPidfd(pid int) int {
	fd, err := unix.PidfdOpen(pid, 0) // close-on-exec by definition
	if err != nil {
		return -1
	}
	return fd
}
