//go:build linux

package evio

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

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
// one, so the private table reaches no other code; it first drops what it
// copied (dropCopied). One thread per call; it runs only when another
// thread reused the number in the moment between evio's close and its
// Closed callback.
func deleteStale(epfd, fd, dfd int) error {
	return inPrivateTable(func() error {
		dropCopied(epfd, dfd)
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

// A private copy of the descriptor table holds a reference to every file
// the process had open when it was made: a socket another goroutine closes
// while the copy lives stays open, its peer seeing neither FIN nor EOF nor
// the end of a unix stream, until the copy goes. So a copy that lives on
// (isolate's, through evio's last closes) drops at once everything it does
// not need, with close_range(2): one system call per gap between the
// descriptors it keeps. It keeps those of the process that were not
// sockets when the first evio server started (standard I/O, and the Go
// runtime's poller and the eventfd that wakes it: the thread's exit may
// wake the poller, and a failed wake-up is fatal to the runtime) and the
// ones its caller names. Measured with the differential fuzzer (evhub
// fuzz -backend evio -ops 200000 -seed 21 -keep-going): holding the copy
// 1 ms longer multiplied its divergences by about five.
var copyKeep struct {
	once sync.Once
	fds  []int // sorted; nil when they could not be listed
}

// prepareCopies lists, once, the descriptors private copies keep.
func prepareCopies() {
	copyKeep.once.Do(func() {
		// The runtime creates its poller with the first pollable file.
		if r, w, err := os.Pipe(); err == nil {
			_, _ = r.Close(), w.Close()
		}
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return
		}
		fds := []int{0, 1, 2}
		for _, e := range ents {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			target, err := os.Readlink("/proc/self/fd/" + e.Name())
			if err == nil && !strings.HasPrefix(target, "socket:") {
				fds = append(fds, fd)
			}
		}
		slices.Sort(fds)
		copyKeep.fds = slices.Compact(fds)
	})
}

// dropCopied closes, in the calling thread's private copy of the
// descriptor table, every descriptor but the kept ones and keep. It does
// nothing unless prepareCopies listed them.
func dropCopied(keep ...int) {
	if copyKeep.fds == nil {
		return
	}
	all := slices.Concat(copyKeep.fds, keep)
	slices.Sort(all)
	next := 0
	for _, fd := range all {
		if fd < next {
			continue
		}
		if fd > next {
			_ = unix.CloseRange(uint(next), uint(fd-1), 0)
		}
		next = fd + 1
	}
	_ = unix.CloseRange(uint(next), ^uint(0), 0)
}
