//go:build linux

package evio

import (
	"os"
	"runtime"
	"slices"
	"strconv"
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
	return inPrivateTable([]int{epfd, dfd}, func() error {
		if err := unix.Dup3(dfd, fd, unix.O_CLOEXEC); err != nil {
			return err
		}
		return unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil)
	})
}

// inPrivateTable runs f on a thread of its own, once it has a private
// copy of the descriptor table that holds only what copies keep and keep
// (unshareKept), and returns f's error, or unshare's. The thread is never
// unlocked: it ends with f's goroutine.
func inPrivateTable(keep []int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The runtime keeps the main thread when its goroutine exits
			// locked, so it must not hold a private table: another
			// thread does it while this one stays locked.
			errc <- inPrivateTable(keep, f)
			runtime.UnlockOSThread()
			return
		}
		if err := unshareKept(keep...); err != nil {
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
// descriptors of the process that were neither sockets nor directories
// when the first evio server started (standard I/O, and the Go runtime's
// poller and the eventfd that wakes it: the thread's exit may wake the
// poller, and a failed wake-up is fatal to the runtime), each only while
// its number still names the same file, and those its caller names.
// Measured with the differential fuzzer, whose 8 workers each stop an evio
// server (an isolate) at the end of each sequence: with `evhub fuzz
// -backend evio -ops 200000 -seed 21 -keep-going`, 17-28 of about 11,760
// sequences diverged while isolate's copy held everything until its thread
// ended, 116 with that copy held 1 ms longer (a build that slept there),
// 1-4 in four runs with the copies dropped (dropCopied); with `-ops
// 1000000 -seed 31`, 24 of 59,574 with isolate's copy dropped just after
// it was made, 7 of 59,558 with it never made (unshareKept). A number
// kept by number alone was a file of another goroutine (or the listing's
// own directory) when listed, and a socket later: a copy then held that
// socket for as long as its thread lived (seen with `evhub fuzz -backend
// evio -ops 600000 -seed 53`: a peer's write accepted after net's Close).
var copyKeep struct {
	once sync.Once
	fds  []keptFD // sorted; nil when they could not be listed
}

// keptFD is a descriptor copies keep, with the file it named when listed.
type keptFD struct {
	fd       int
	dev, ino uint64
}

// prepareCopies lists, once, the descriptors private copies keep.
func prepareCopies() {
	copyKeep.once.Do(func() {
		// The runtime creates its poller with the first pollable file.
		if r, w, err := os.Pipe(); err == nil {
			_, _ = r.Close(), w.Close()
		}
		copyKeep.fds = listKept()
	})
}

// listKept lists the open descriptors that are neither sockets nor
// directories (the listing's own is one), and standard I/O whatever it is.
func listKept() []keptFD {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	fds := []int{0, 1, 2}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	kept := []keptFD{}
	for _, fd := range slices.Compact(fds) {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		kind := st.Mode & unix.S_IFMT
		if fd > 2 && (kind == unix.S_IFSOCK || kind == unix.S_IFDIR) {
			continue
		}
		kept = append(kept, keptFD{fd, st.Dev, st.Ino})
	}
	return kept
}

// stillKept returns, sorted, the kept descriptors whose number names the
// file it named when listed, and keep.
func stillKept(keep []int) []int {
	fds := slices.Clone(keep)
	for _, k := range copyKeep.fds {
		var st unix.Stat_t
		if unix.Fstat(k.fd, &st) == nil && st.Dev == k.dev && st.Ino == k.ino {
			fds = append(fds, k.fd)
		}
	}
	slices.Sort(fds)
	return slices.Compact(fds)
}

// closeRangeUnshare is CLOSE_RANGE_UNSHARE (linux/close_range.h).
const closeRangeUnshare = 1 << 1

// unshareKept gives the calling thread a private descriptor table that
// holds only the descriptors copies keep, and keep. close_range(first, ~0,
// CLOSE_RANGE_UNSHARE), first past the highest of them, copies only the
// descriptors below first, so no socket numbered above it gets a second
// reference even for a moment; the few below that are not kept are
// dropped next. Without that flag (a kernel before 5.9) it is
// unshare(CLONE_FILES) and dropCopied.
func unshareKept(keep ...int) error {
	if copyKeep.fds != nil {
		if fds := stillKept(keep); len(fds) > 0 {
			first := fds[len(fds)-1] + 1
			if unix.CloseRange(uint(first), ^uint(0), closeRangeUnshare) == nil {
				dropCopied(keep...)
				return nil
			}
		}
	}
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return err
	}
	dropCopied(keep...)
	return nil
}

// dropCopied closes, in the calling thread's private copy of the
// descriptor table, every descriptor but the kept ones (stillKept) and
// keep. It does nothing unless prepareCopies listed them.
func dropCopied(keep ...int) {
	if copyKeep.fds == nil {
		return
	}
	next := 0
	for _, fd := range stillKept(keep) {
		if fd > next {
			_ = unix.CloseRange(uint(next), uint(fd-1), 0)
		}
		next = fd + 1
	}
	_ = unix.CloseRange(uint(next), ^uint(0), 0)
}
