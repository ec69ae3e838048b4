package scheduler

import "golang.org/x/sys/unix"

// bytesQueued reports whether the socket fd has bytes to read (SIOCINQ),
// without reading, and so without taking a pending error.
func bytesQueued(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return err == nil && n > 0
}
