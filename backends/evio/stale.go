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
// table, drops at once all of it but those two files (dropCopied), points
// the number at the socket there (dup3 drops only the copy's reference to
// the other file), deletes the registration, and ends with its goroutine:
// the runtime ends a thread locked to a goroutine that exits, and starts
// no thread from a locked one, so the private table reaches no other
// code. One thread per call; it runs only when another thread reused the
// number in the moment between evio's close and its Closed callback
// (101-200 times in the 11,750 sequences of evhub fuzz -backend evio -ops
// 200000 -seed 21, 8 workers opening sockets meanwhile).
func deleteStale(epfd, fd, dfd int) error {
	return inPrivateTable(func() error {
		dropCopied(epfd, dfd)
		if err := unix.Dup3(dfd, fd, unix.O_CLOEXEC); err != nil {
			return err
		}
		return unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil)
	})
}

// inPrivateTable runs f on a thread of its own, once it has a private
// copy of the descriptor table, and returns f's error, or unshare's. The
// thread is never unlocked: it ends with f's goroutine.
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
// it copied: a socket another goroutine closes while the copy lives stays
// open, its peer seeing neither FIN nor the end of a unix stream, until
// the copy goes. So a copy keeps only what its thread may still use: the
// descriptors of the process that were not sockets when the first evio
// server started (standard I/O, and the Go runtime's poller and the
// eventfd that wakes it: the thread's exit may wake the poller, and a
// failed wake-up is fatal to the runtime), and those its caller names.
// Measured with the differential fuzzer, whose 8 workers each stop an evio
// server (an isolate) at the end of each sequence: with `evhub fuzz
// -backend evio -ops 200000 -seed 21 -keep-going`, 17-28 of about 11,760
// sequences diverged while isolate's copy held everything until its thread
// ended, 116 with that copy held 1 ms longer (a build that slept there),
// 1-4 in four runs with the copies dropped (dropCopied); with `-ops
// 1000000 -seed 31`, 24 of 59,574 with isolate's copy dropped just after
// it was made, 7 of 59,558 with it never made (unshareKept).
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

// closeRangeUnshare is CLOSE_RANGE_UNSHARE (linux/close_range.h).
const closeRangeUnshare = 1 << 1

// unshareKept gives the calling thread a private descriptor table that
// holds only the descriptors copies keep. close_range(first, ~0,
// CLOSE_RANGE_UNSHARE), first past the highest of them, copies only the
// descriptors below first, so no socket numbered above it gets a second
// reference even for a moment; the few below that are not kept are
// dropped next. Without that flag (a kernel before 5.9) it is
// unshare(CLONE_FILES) and dropCopied.
func unshareKept() error {
	if n := len(copyKeep.fds); n > 0 {
		first := copyKeep.fds[n-1] + 1
		if unix.CloseRange(uint(first), ^uint(0), closeRangeUnshare) == nil {
			dropCopied()
			return nil
		}
	}
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return err
	}
	dropCopied()
	return nil
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
