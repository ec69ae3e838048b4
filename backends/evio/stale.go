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
// new owner. So a thread of its own gets a private descriptor table that
// holds those two files and nothing of the process but the runtime's
// (unshareKept), points the number at the socket there (if the number was
// copied, dup3 drops only the copy's reference to the other file),
// deletes the registration, closes what it holds, and ends with its goroutine:
// the runtime ends a thread locked to a goroutine that exits, and starts
// no thread from a locked one, so the private table reaches no other
// code. One thread per call; it runs only when another thread reused the
// number in the moment between evio's close and its Closed callback
// (101-200 times in the 11,750 sequences of evhub fuzz -backend evio -ops
// 200000 -seed 21, 8 workers opening sockets meanwhile).
func deleteStale(epfd, fd, dfd int) error {
	return inPrivateTable([]int{epfd, dfd}, func(own []int) error {
		// Closed before the thread ends (which may take a while): the
		// socket's last close must not wait for it.
		defer func() { _, _ = unix.Close(own[0]), unix.Close(own[1]) }()
		for i, n := range own {
			if n == fd { // fetched into the number to point at the socket
				moved, err := unix.FcntlInt(uintptr(n), unix.F_DUPFD_CLOEXEC, fd+1)
				if err != nil {
					return err
				}
				_ = unix.Close(n)
				own[i] = moved
			}
		}
		if err := unix.Dup3(own[1], fd, unix.O_CLOEXEC); err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.EpollCtl(own[0], unix.EPOLL_CTL_DEL, fd, nil)
	})
}

// inPrivateTable runs f on a thread of its own, once it has a private
// descriptor table (unshareKept) that holds what copies keep and the
// files of keep (f gets their numbers there), and returns f's error, or
// unshareKept's. The thread is never unlocked: it ends with f's goroutine.
func inPrivateTable(keep []int, f func(own []int) error) error {
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
		own, err := unshareKept(keep...)
		if err != nil {
			if own == nil {
				runtime.UnlockOSThread() // the table is still the process's
			}
			errc <- err
			return
		}
		errc <- f(own)
	}()
	return <-errc
}

// A private copy of the descriptor table holds a reference to every file
// it copied: a socket another goroutine closes while the copy lives stays
// open, its peer seeing neither FIN nor the end of a unix stream, until
// the copy goes. So a copy holds only what its thread may still use:
// standard I/O and the Go runtime's poller and the eventfd that wakes it
// (the thread's exit may wake the poller, and a failed wake-up is fatal to
// the runtime), as they were when the package started, each only while
// its number still names that file; and the files its caller names,
// fetched from the process's table (pidfd_getfd) rather than copied.
//
// Measured with the differential fuzzer, whose 8 workers each stop an evio
// server (an isolate) at the end of each sequence: with `evhub fuzz
// -backend evio -ops 200000 -seed 21 -keep-going`, 17-28 of about 11,760
// sequences diverged while isolate's copy held everything until its thread
// ended, 116 with that copy held 1 ms longer (a build that slept there),
// 1-4 in four runs with the copies dropped just after they were made; with
// `-ops 1000000 -seed 31`, 24 of 59,574 with isolate's copy dropped just
// after it was made, 7 of 59,558 with it never made. Copying every number
// below the highest one kept still copied nearly all: a file the process
// inherited (a shell's pipe at 251) or a caller's descriptor sat above the
// sockets, and a thread that lost its P between the copy and the drop held
// them for 100 ms and more (a peer's write accepted after net's Close, in
// `evhub fuzz -backend evio -ops 600000 -seed 53`).
var copyKeep struct {
	once  sync.Once
	fds   []keptFD // sorted; nil when they could not be listed
	fetch bool     // pidfd_getfd works here
}

// keptFD is a descriptor copies keep, with the file it named when listed.
type keptFD struct {
	fd       int
	dev, ino uint64
}

// The descriptors copies keep are listed when the package starts, before
// the program has opened much: the runtime's poller is made then if not
// yet (prepareCopies' pipe), few numbers below it are free, and the
// placeholders that take those (fillHoles) are in place before anything
// counts the process's descriptors, as the tests' leak checks do.
func init() { prepareCopies() }

// prepareCopies lists, once, the descriptors private copies keep.
func prepareCopies() {
	copyKeep.once.Do(func() {
		// The runtime creates its poller with the first pollable file,
		// and registers the pipe's read end in it: that names it.
		if r, w, err := os.Pipe(); err == nil {
			var st unix.Stat_t
			if unix.Fstat(int(r.Fd()), &st) == nil {
				copyKeep.fds = listKept(int(r.Fd()), st.Ino)
			}
			_, _ = r.Close(), w.Close()
		}
		copyKeep.fds = fillHoles(copyKeep.fds)
		if pidfd, err := unix.PidfdOpen(unix.Getpid(), 0); err == nil {
			if fd, err := unix.PidfdGetfd(pidfd, pidfd, 0); err == nil {
				copyKeep.fetch = true
				_ = unix.Close(fd)
			}
			_ = unix.Close(pidfd)
		}
	})
}

// listKept lists standard I/O and the runtime's poller: the epoll
// instance that watches fd (of inode ino, a pollable file the runtime
// registered) and the eventfd among its targets, which wakes it. Only
// where no instance is found so are all open epoll instances and
// eventfds listed (the runtime's among them). Copies should hold no more:
// every descriptor numbered below the highest kept is copied, if only for
// a moment, and a copied socket stays open for as long as the copy holds
// it (its peer does not see a Close of the process's own).
func listKept(fd int, ino uint64) []keptFD {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	fds := []int{0, 1, 2}
	var anon, poller []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" {
			anon = append(anon, n)
		}
		if target != "anon_inode:[eventpoll]" || poller != nil {
			continue
		}
		targets, _ := epollTargets(n)
		if !slices.Contains(targets, epollTarget{fd, ino}) {
			continue
		}
		for _, t := range targets {
			if l, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(t.fd)); l == "anon_inode:[eventfd]" {
				poller = []int{n, t.fd}
				break
			}
		}
	}
	if poller != nil {
		anon = poller
	}
	fds = append(fds, anon...)
	slices.Sort(fds)
	kept := []keptFD{}
	for _, fd := range slices.Compact(fds) {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			kept = append(kept, keptFD{fd, st.Dev, st.Ino})
		}
	}
	return kept
}

// fillHoles takes the free numbers below the highest kept descriptor
// with placeholders (/dev/null, kept from then on): a copy takes every
// number below the highest kept, and a socket given one of those later
// would be copied with them.
func fillHoles(kept []keptFD) []keptFD {
	if len(kept) == 0 {
		return kept
	}
	top := kept[len(kept)-1].fd
	first, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return kept
	}
	// Duplicated from above top: open took the lowest free number, a
	// hole itself maybe, which the loop fills in order.
	null, err := unix.FcntlInt(uintptr(first), unix.F_DUPFD_CLOEXEC, top+1)
	_ = unix.Close(first)
	if err != nil {
		return kept
	}
	defer unix.Close(null)
	for n := 3; n < top; n++ {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err != unix.EBADF {
			continue
		}
		// The lowest free number from n: n itself, unless another
		// goroutine took it meanwhile (then it is not ours to hold).
		got, err := unix.FcntlInt(uintptr(null), unix.F_DUPFD_CLOEXEC, n)
		if err != nil {
			break
		}
		var st unix.Stat_t
		if got != n || unix.Fstat(got, &st) != nil {
			_ = unix.Close(got)
			continue
		}
		kept = append(kept, keptFD{got, st.Dev, st.Ino})
	}
	slices.SortFunc(kept, func(a, b keptFD) int { return a.fd - b.fd })
	return kept
}

// epollTarget is a descriptor an epoll instance watches, and its inode.
type epollTarget struct {
	fd  int
	ino uint64
}

// epollTargets lists what the epoll instance epfd watches, from its
// /proc fdinfo ("tfd: 5 events: 19 data: ... ino:1bc400b sdev:f").
func epollTargets(epfd int) ([]epollTarget, error) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(epfd))
	if err != nil {
		return nil, err
	}
	var ts []epollTarget
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "tfd:" {
			continue
		}
		fd, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		t := epollTarget{fd: fd}
		for _, kv := range f[2:] {
			if v, ok := strings.CutPrefix(kv, "ino:"); ok {
				t.ino, _ = strconv.ParseUint(v, 16, 64)
			}
		}
		ts = append(ts, t)
	}
	return ts, nil
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
// holds only the descriptors copies keep, and the files of keep, whose
// numbers there it returns. close_range(first, ~0, CLOSE_RANGE_UNSHARE),
// first past the highest kept, copies only the descriptors below first
// (standard I/O and the runtime's, opened early, and seldom anything
// else, dropped next); keep's files are fetched from the process's table
// with pidfd_getfd. Where that cannot be done (a kernel before 5.6), first
// is past keep too; before 5.9 (no CLOSE_RANGE_UNSHARE), the whole table
// is copied, then dropped. An error with numbers: the table is private,
// but keep's files could not be fetched.
func unshareKept(keep ...int) ([]int, error) {
	copied := keep // the files of keep are copied along, unless fetched
	if copyKeep.fetch {
		copied = nil
	}
	if copyKeep.fds != nil {
		if fds := stillKept(copied); len(fds) > 0 && unix.CloseRange(uint(fds[len(fds)-1]+1), ^uint(0), closeRangeUnshare) == nil {
			dropAllBut(fds)
			if copyKeep.fetch {
				return fetch(keep)
			}
			return keep, nil
		}
	}
	all := stillKept(keep) // listed before the copy, as above
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return nil, err
	}
	if copyKeep.fds != nil {
		dropAllBut(all)
	}
	return keep, nil
}

// fetch copies the files of the process's descriptors fds into the
// calling thread's private table and returns their numbers there.
func fetch(fds []int) ([]int, error) {
	own := make([]int, 0, len(fds))
	if len(fds) == 0 {
		return own, nil
	}
	pidfd, err := unix.PidfdOpen(unix.Getpid(), 0)
	if err != nil {
		return own, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	for _, fd := range fds {
		n, err := unix.PidfdGetfd(pidfd, fd, 0)
		if err != nil {
			return own, os.NewSyscallError("pidfd_getfd", err)
		}
		own = append(own, n)
	}
	return own, nil
}

// dropAllBut closes every descriptor of the calling thread's private
// table but fds (sorted). Raw system calls, nothing between them: an
// ordinary one may give the thread's P away on its way back and park the
// thread until it gets one, holding whatever the copy took meanwhile.
func dropAllBut(fds []int) {
	next := uintptr(0)
	for _, fd := range fds {
		if uintptr(fd) > next {
			unix.RawSyscall(unix.SYS_CLOSE_RANGE, next, uintptr(fd-1), 0)
		}
		next = uintptr(fd) + 1
	}
	unix.RawSyscall(unix.SYS_CLOSE_RANGE, next, uintptr(^uint32(0)), 0)
}
