//go:build linux

package evio

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// deleteStale deletes the registration of (the socket dfd holds, fd) from
// the epoll instance epfd after fd itself was closed and its number given
// to another file. epoll keys a registration by file and number, and
// EPOLL_CTL_DEL finds it only through a descriptor of that number for
// that file, which the process no longer has and must not take from its
// new owner. So a thread of its own gets a private copy of the descriptor
// table (unshare(CLONE_FILES)), points the number at the socket there
// (dup3 drops only the copy's reference to the other file), deletes the
// registration, and ends with its goroutine: the runtime ends a thread
// locked to a goroutine that exits, and starts no thread from a locked
// one, so the private table reaches no other code. While it lives, the
// copy holds a reference to every file the process had open: a socket
// another goroutine closes in those microseconds reaches its peer when
// the thread ends. One thread per call; it runs only when another thread
// reused the number in the moment between evio's close and its Closed
// callback.
func deleteStale(epfd, fd, dfd int) error {
	return inPrivateTable(func() error {
		if err := unix.Dup3(dfd, fd, unix.O_CLOEXEC); err != nil {
			return err
		}
		return unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil)
	})
}

// inPrivateTable runs f on a thread of its own that has a private copy of
// the descriptor table, and returns f's error, or unshare's. The thread
// is never unlocked: it ends with f's goroutine.
func inPrivateTable(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The runtime keeps the main thread when its goroutine exits
			// locked, so it must not hold a private table: another
			// thread does it while this one stays locked.
			errc <- inPrivateTable(f)
			runtime.UnlockOSThread()
			return
		}
		if err := unix.Unshare(unix.CLONE_FILES); err != nil {
			runtime.UnlockOSThread() // the table is still the process's
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}
