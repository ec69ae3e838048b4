package netpoll

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

const allEvents = loop.Readable | loop.Writable

// eventBuf is how many events one epoll_wait collects; a full buffer makes
// the loop look again on its next iteration.
const eventBuf = 128

// poller is the readiness state of a Loop on Linux: one epoll instance of
// the loop's own, which the Go runtime's netpoller watches like any other
// file (epoll instances nest), and one waiter goroutine parked on it.
type poller struct {
	epfd  int
	epf   *os.File        // owns epfd; registered with the runtime netpoller
	eprc  syscall.RawConn // epf's raw access, used by the waiter
	ioRdy atomic.Bool     // the waiter saw an edge since the last epoll_wait
	done  sync.WaitGroup  // the waiter goroutine

	// Loop goroutine only.
	events []unix.EpollEvent
	slots  []*watcher // by slot; a watcher's epoll data is its slot and gen
	free   []uint32   // unused slots
	gen    uint32     // generation of the newest registration
	again  bool       // look again next iteration: level events ran, or the buffer was full
}

// watcher is one Watch or WatchEdge registration: an epoll item on the
// caller's fd, or on a duplicate of it when the fd already has one (epoll
// keys its items by file and fd number).
type watcher struct {
	l     *Loop
	fd    int // the caller's fd
	regfd int // the fd registered with epoll: fd, or our duplicate
	cb    func(loop.Events)
	edge  bool
	slot  uint32
	gen   uint32

	armed   loop.Events
	stopped bool
}

func (l *Loop) initPoller() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("netpoll: new: %w", os.NewSyscallError("epoll_create1", err))
	}
	// A non-blocking fd makes os.NewFile register it with the runtime's
	// netpoller: the loop never blocks a thread in epoll_wait.
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return fmt.Errorf("netpoll: new: %w", os.NewSyscallError("fcntl", err))
	}
	l.epfd = epfd
	l.epf = os.NewFile(uintptr(epfd), "evhub-netpoll-epoll")
	// A file the runtime could not register has no deadline support: its
	// waiter would never park, so refuse it plainly.
	if err := l.epf.SetReadDeadline(time.Time{}); err != nil {
		_ = l.epf.Close()
		return fmt.Errorf("netpoll: new: the runtime netpoller cannot watch an epoll instance: %w", err)
	}
	rc, err := l.epf.SyscallConn()
	if err != nil {
		_ = l.epf.Close()
		return fmt.Errorf("netpoll: new: %w", err)
	}
	l.eprc = rc
	l.events = make([]unix.EpollEvent, eventBuf)
	l.done.Add(1)
	go l.wait()
	return nil
}

// wait is the waiter goroutine: it stays in one SyscallConn().Read on the
// epoll file for the loop's life and wakes the loop on each of its edges.
func (l *Loop) wait() {
	defer l.done.Done()
	_ = l.eprc.Read(func(uintptr) bool {
		l.ioRdy.Store(true)
		l.Wake()
		// Never done: the runtime parks us until the next edge, and keeps
		// an edge that arrives meanwhile (its pdReady flag), because this
		// one wait is never re-prepared.
		return false
	})
	// The epoll file was closed: Close is under way.
}

// pending reports that the next iteration must look at the epoll instance
// without waiting for a wake-up.
func (l *Loop) pending() bool { return l.again }

// Watch arms a level-triggered watcher for ev on fd (see the package
// documentation). It sets O_NONBLOCK on fd. An invalid fd is an error
// wrapping EBADF; so are an empty or unknown ev and a nil cb, and a file
// epoll cannot watch (a regular file: EPERM).
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	w, err := l.watch("watch", fd, ev, cb, false)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// WatchEdge arms an edge-triggered watcher for ev on fd: cb runs once each
// time fd becomes ready in an armed direction (and once at registration if
// it already is), and an fd that stays ready fires no more. Arguments and
// errors are as for Watch. This implements loop.EdgeWatcher.
func (l *Loop) WatchEdge(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	w, err := l.watch("watch edge", fd, ev, cb, true)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (l *Loop) watch(op string, fd int, ev loop.Events, cb func(loop.Events), edge bool) (*watcher, error) {
	if l.Closed() {
		return nil, fmt.Errorf("netpoll: %s fd %d: %w", op, fd, loop.ErrClosed)
	}
	if ev == 0 || ev&^allEvents != 0 {
		return nil, fmt.Errorf("netpoll: %s fd %d: invalid events %#x (want Readable, Writable or both)", op, fd, uint8(ev))
	}
	if cb == nil {
		return nil, fmt.Errorf("netpoll: %s fd %d: nil callback", op, fd)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("netpoll: %s fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	if flags&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_NONBLOCK); err != nil {
			return nil, fmt.Errorf("netpoll: %s fd %d: set non-blocking: %w", op, fd, os.NewSyscallError("fcntl", err))
		}
	}
	w := &watcher{l: l, fd: fd, regfd: fd, cb: cb, edge: edge, armed: ev}
	l.assign(w)
	err = l.ctl(unix.EPOLL_CTL_ADD, w, ev)
	if errors.Is(err, unix.EEXIST) {
		// Another watcher holds fd: this one registers a duplicate, which
		// is its own epoll item.
		dup, derr := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if derr != nil {
			l.release1(w)
			return nil, fmt.Errorf("netpoll: %s fd %d: dup: %w", op, fd, os.NewSyscallError("fcntl", derr))
		}
		w.regfd = dup
		if err = l.ctl(unix.EPOLL_CTL_ADD, w, ev); err != nil {
			_ = unix.Close(dup)
		}
	}
	if err != nil {
		l.release1(w)
		return nil, fmt.Errorf("netpoll: %s fd %d: %w", op, fd, err)
	}
	// epoll queues an item that is ready when it is added; look at once
	// rather than after the runtime's netpoller has passed the edge on.
	l.again = true
	return w, nil
}

// assign gives w a free slot and a new generation.
func (l *Loop) assign(w *watcher) {
	l.gen++
	w.gen = l.gen
	if n := len(l.free); n > 0 {
		w.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.slots[w.slot] = w
		return
	}
	w.slot = uint32(len(l.slots))
	l.slots = append(l.slots, w)
}

// release1 frees w's slot.
func (l *Loop) release1(w *watcher) {
	l.slots[w.slot] = nil
	l.free = append(l.free, w.slot)
}

// ctl adds or modifies w's epoll item for ev. An item with nothing armed
// stays registered edge-triggered, so that a hang-up (which epoll reports
// whatever was asked) cannot fire on every iteration of a paused watcher.
func (l *Loop) ctl(op int, w *watcher, ev loop.Events) error {
	var e unix.EpollEvent
	if ev&loop.Readable != 0 {
		e.Events |= unix.EPOLLIN
	}
	if ev&loop.Writable != 0 {
		e.Events |= unix.EPOLLOUT
	}
	if w.edge || ev == 0 {
		e.Events |= unix.EPOLLET
	}
	e.Fd = int32(w.slot)
	e.Pad = int32(w.gen)
	if err := unix.EpollCtl(l.epfd, op, w.regfd, &e); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// dispatch runs the callbacks of what epoll has ready, and returns how
// many ran. It calls epoll_wait only when the waiter saw an edge or the
// last iteration asked to look again: posts and timers alone cost no
// system call.
func (l *Loop) dispatch() int {
	edge := l.ioRdy.Swap(false)
	if !edge && !l.again {
		return 0
	}
	l.again = false
	var n int
	for {
		var err error
		n, err = unix.EpollWait(l.epfd, l.events, 0)
		if err != unix.EINTR {
			break
		}
	}
	if n <= 0 {
		return 0
	}
	if n == len(l.events) {
		l.again = true
	}
	ran := 0
	for i := range l.events[:n] {
		e := &l.events[i]
		slot, gen := uint32(e.Fd), uint32(e.Pad)
		if int(slot) >= len(l.slots) {
			continue
		}
		w := l.slots[slot]
		// A watcher stopped since epoll reported it (by an earlier
		// callback of this batch, say) has lost its slot or its
		// generation; a paused one asks for nothing.
		if w == nil || w.gen != gen || w.stopped || l.Closed() {
			continue
		}
		ev := toEvents(e.Events) & w.armed
		if ev == 0 {
			continue
		}
		if !w.edge {
			// Level-triggered: epoll keeps the item ready but does not
			// signal the epoll file again, so the loop looks itself.
			l.again = true
		}
		ran++
		w.cb(ev)
	}
	return ran
}

// toEvents maps epoll's report to loop events; error and hang-up count as
// ready in both directions, so the owner's next system call surfaces them.
func toEvents(e uint32) loop.Events {
	if e&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		return allEvents
	}
	var ev loop.Events
	if e&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0 {
		ev |= loop.Readable
	}
	if e&unix.EPOLLOUT != 0 {
		ev |= loop.Writable
	}
	return ev
}

// Events reports the armed events (0 once stopped).
func (w *watcher) Events() loop.Events { return w.armed }

// Modify changes the armed events; 0 pauses the watcher, which keeps its
// registration. It is an error on a stopped watcher or for unknown events.
func (w *watcher) Modify(ev loop.Events) error {
	if w.stopped {
		return fmt.Errorf("netpoll: modify fd %d: watcher is stopped", w.fd)
	}
	if ev&^allEvents != 0 {
		return fmt.Errorf("netpoll: modify fd %d: invalid events %#x (want Readable, Writable, both or none)", w.fd, uint8(ev))
	}
	if ev == w.armed {
		return nil
	}
	if err := w.l.ctl(unix.EPOLL_CTL_MOD, w, ev); err != nil {
		return fmt.Errorf("netpoll: modify fd %d: %w", w.fd, err)
	}
	w.armed = ev
	if ev != 0 {
		// A modified item that is ready is queued again: look at once.
		w.l.again = true
	}
	return nil
}

// Stop cancels the watcher: its callback never runs again, even for
// readiness already collected. It removes the epoll item (and closes the
// duplicate, if the watcher has one; never the caller's fd) before it
// returns; the watcher's slot and generation make any event epoll already
// reported for it unreachable, so a reused fd number cannot see it. Stop
// is idempotent.
func (w *watcher) Stop() error {
	if w.stopped {
		return nil
	}
	w.stopped = true
	w.armed = 0
	l := w.l
	l.release1(w)
	var err error
	if e := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, w.regfd, nil); e != nil && e != unix.ENOENT && e != unix.EBADF {
		err = fmt.Errorf("netpoll: stop watcher of fd %d: %w", w.fd, os.NewSyscallError("epoll_ctl", e))
	}
	if w.regfd != w.fd {
		if e := unix.Close(w.regfd); e != nil && err == nil {
			err = fmt.Errorf("netpoll: stop watcher of fd %d: %w", w.fd, os.NewSyscallError("close", e))
		}
	}
	return err
}

// release stops every watcher, closes the epoll instance and waits for the
// waiter goroutine; it runs after the last posted function.
func (l *Loop) release() error {
	var errs []error
	for _, w := range l.slots {
		if w != nil {
			if err := w.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Closing the file wakes the waiter with an error; it then exits.
	if err := l.epf.Close(); err != nil {
		errs = append(errs, fmt.Errorf("epoll: %w", err))
	}
	l.done.Wait()
	l.slots, l.free = nil, nil
	return errors.Join(errs...)
}
