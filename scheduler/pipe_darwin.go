package scheduler

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// pipe makes a close-on-exec pipe whose ends are non-blocking (darwin has
// no pipe2: the fork lock keeps a child from inheriting the ends before
// they are marked close-on-exec, as os.Pipe does).
func pipe(p *[2]int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := unix.Pipe(p[:]); err != nil {
		return err
	}
	for _, fd := range p {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return err
		}
	}
	return nil
}
