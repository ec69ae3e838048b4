//go:build !darwin

package scheduler

import "golang.org/x/sys/unix"

// pipe makes a close-on-exec pipe whose ends are non-blocking.
func pipe(p *[2]int) error {
	return unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK)
}
