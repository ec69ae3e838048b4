//go:build unix && !aix && !linux

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

// poller is the readiness state of a Loop: a duplicate of each watched
// fd registered with the runtime netpoller, and a waiter goroutine per
// armed direction.
type poller struct {
	// Readiness collected by waiter goroutines, in arrival order.
	readyMu    sync.Mutex
	ready      []*watcher
	readySpare []*watcher

	// Loop goroutine only.
	check      []*watcher // level re-checks (and arming checks) for the next iteration
	checkSpare []*watcher
	batch      []*watcher
	watchers   map[*watcher]struct{}

	waiters sync.WaitGroup // waiter goroutines of every watcher
}

func (l *Loop) initPoller() error {
	l.watchers = map[*watcher]struct{}{}
	return nil
}

// pending reports a scheduled check: it runs on the next iteration
// without a wake-up.
func (l *Loop) pending() bool { return len(l.check) > 0 }

// release stops every watcher and waits for their waiter goroutines; it
// runs after the last posted function.
func (l *Loop) release() error {
	var errs []error
	for w := range l.watchers {
		if err := w.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	l.waiters.Wait()
	l.readyMu.Lock()
	clear(l.ready)
	l.ready = nil
	l.readyMu.Unlock()
	clear(l.check)
	l.check = nil
	return errors.Join(errs...)
}

// watcher is one Watch or WatchEdge registration.
type watcher struct {
	l     *Loop
	fd    int             // the caller's fd, for error messages
	dupfd int             // our duplicate, owned by file
	file  *os.File        // registered with the runtime netpoller; keeps dupfd alive
	rc    syscall.RawConn // file's raw access, used by the waiters
	cb    func(loop.Events)
	edge  bool

	closing atomic.Bool // set before file is closed; waiters' errors are then expected

	// Loop goroutine only.
	armed   loop.Events
	waiting loop.Events // directions that have a waiter goroutine
	stopped bool
	inBatch bool
	inCheck bool
	got     loop.Events // readiness to dispatch in the current batch
	pollEv  loop.Events // directions to poll in the current batch
	checkEv loop.Events // directions to poll in the next batch

	// Guarded by l.readyMu.
	pending loop.Events
	queued  bool
}

// Watch arms a level-triggered watcher for ev on fd (see the package
// documentation). It sets O_NONBLOCK on fd. An invalid fd is an error
// wrapping the fcntl error (EBADF); so are an empty or unknown ev and a nil
// cb, and a file the runtime netpoller cannot watch (a regular file on
// Linux: EPERM, as epoll reports it).
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
	// The duplicate is ours to register and close: the caller may close
	// fd after stopping the watcher, and the runtime must never own it.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netpoll: %s fd %d: dup: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	// The shared O_NONBLOCK flag makes os.NewFile register the duplicate
	// with the netpoller.
	file := os.NewFile(uintptr(dup), "evhub-netpoll")
	// A file the netpoller refused (epoll gives EPERM for regular files)
	// has no deadline support: the cheapest way to ask.
	if err := file.SetReadDeadline(time.Time{}); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("netpoll: %s fd %d: the runtime netpoller cannot watch this file: %w (%w)", op, fd, syscall.EPERM, err)
	}
	rc, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("netpoll: %s fd %d: %w", op, fd, err)
	}
	w := &watcher{l: l, fd: fd, dupfd: dup, file: file, rc: rc, cb: cb, edge: edge}
	l.watchers[w] = struct{}{}
	w.arm(ev)
	return w, nil
}

// arm sets the armed events, starts waiters for directions that have none
// and schedules a readiness check where an edge may have been missed.
func (w *watcher) arm(ev loop.Events) {
	// Directions re-armed while their waiter kept running: edges that came
	// while they were disarmed were dropped.
	rearmed := ev &^ w.armed & w.waiting
	w.armed = ev
	if start := ev &^ w.waiting; start != 0 {
		w.waiting |= start
		for _, dir := range [...]loop.Events{loop.Readable, loop.Writable} {
			if start&dir != 0 {
				w.l.waiters.Add(1)
				go w.wait(dir)
			}
		}
	}
	// A level watcher reports current readiness on the next iteration. An
	// edge watcher looks only where it may have missed an edge; a new
	// waiter looks by itself.
	if w.edge {
		ev = rearmed
	}
	if ev != 0 {
		w.l.queueCheck(w, ev)
	}
}

// wait is a waiter goroutine: it reports each readiness edge of fd in dir
// until the watcher's file is closed.
func (w *watcher) wait(dir loop.Events) {
	defer w.l.waiters.Done()
	first := true
	fn := func(fd uintptr) bool {
		if first {
			// The wait was just prepared, which cleared any edge the
			// netpoller saw before: look at the fd itself once.
			first = false
			if readyNow(int(fd), dir) == 0 {
				return false
			}
		}
		w.l.collect(w, dir)
		// Never done: the runtime parks us until the next edge, and keeps
		// an edge that arrives meanwhile (its pdReady flag), because this
		// one wait is never re-prepared.
		return false
	}
	var err error
	if dir == loop.Readable {
		err = w.rc.Read(fn)
	} else {
		err = w.rc.Write(fn)
	}
	if err != nil && !w.closing.Load() {
		// Not our Stop: report readiness so the owner's next system call
		// surfaces whatever went wrong, rather than going silent.
		w.l.collect(w, dir)
	}
}

// collect records readiness from a waiter and wakes the loop when the ready
// list was empty. It never waits for the loop.
func (l *Loop) collect(w *watcher, dir loop.Events) {
	l.readyMu.Lock()
	w.pending |= dir
	first := false
	if !w.queued {
		w.queued = true
		first = len(l.ready) == 0
		l.ready = append(l.ready, w)
	}
	l.readyMu.Unlock()
	if first {
		l.Wake()
	}
}

// queueCheck makes the next iteration poll w's fd for dirs.
func (l *Loop) queueCheck(w *watcher, dirs loop.Events) {
	w.checkEv |= dirs
	if !w.inCheck {
		w.inCheck = true
		l.check = append(l.check, w)
	}
}

// dispatch runs the callbacks of the readiness collected by the waiters and
// of the scheduled checks, and returns how many ran.
func (l *Loop) dispatch() int {
	batch := l.batch[:0]
	l.readyMu.Lock()
	ready := l.ready
	l.ready = l.readySpare[:0]
	for _, w := range ready {
		w.queued = false
		w.got |= w.pending
		w.pending = 0
		if !w.inBatch {
			w.inBatch = true
			batch = append(batch, w)
		}
	}
	l.readyMu.Unlock()
	clear(ready)
	l.readySpare = ready[:0]

	check := l.check
	l.check = l.checkSpare[:0]
	for _, w := range check {
		w.inCheck = false
		w.pollEv |= w.checkEv
		w.checkEv = 0
		if !w.inBatch {
			w.inBatch = true
			batch = append(batch, w)
		}
	}
	clear(check)
	l.checkSpare = check[:0]

	n := 0
	for i, w := range batch {
		batch[i] = nil
		w.inBatch = false
		ev, pollEv := w.got, w.pollEv
		w.got, w.pollEv = 0, 0
		// A watcher stopped or modified since its readiness was collected
		// (by an earlier callback of this batch, say) gets only what it
		// still asks for, and nothing once stopped.
		if w.stopped || l.Closed() {
			continue
		}
		if !w.edge {
			// Level-triggered: what is ready now, not what was collected;
			// an edge whose data an earlier callback drained must not
			// fire.
			ev, pollEv = 0, w.armed
		}
		if pollEv &= w.armed &^ ev; pollEv != 0 {
			ev |= readyNow(w.dupfd, pollEv)
		}
		if ev &= w.armed; ev == 0 {
			continue
		}
		n++
		w.cb(ev)
		if !w.edge && !w.stopped {
			// Level-triggered: look again next iteration, fire while ready.
			l.queueCheck(w, allEvents)
		}
	}
	l.batch = batch[:0]
	return n
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
	w.arm(ev)
	return nil
}

// Stop cancels the watcher: its callback never runs again, even for
// readiness already collected. It closes the loop's duplicate of the fd
// (never the caller's fd) and returns once that is closed and deregistered
// from the netpoller, so a reused fd number cannot see this watcher's
// events. Stop is idempotent.
func (w *watcher) Stop() error {
	if w.stopped {
		return nil
	}
	w.stopped = true
	w.armed = 0
	delete(w.l.watchers, w)
	w.closing.Store(true)
	// Wakes the waiters with poll.ErrFileClosing and waits until they have
	// let go of the fd; they never wait for the loop, so this cannot
	// deadlock on the loop goroutine.
	if err := w.file.Close(); err != nil {
		return fmt.Errorf("netpoll: stop watcher of fd %d: %w", w.fd, err)
	}
	return nil
}

// readyNow reports which of ev are ready on fd now, without blocking.
// Error, hang-up and invalid-fd conditions count as ready in every
// direction asked for, so the next system call surfaces them.
func readyNow(fd int, ev loop.Events) loop.Events {
	var pfd [1]unix.PollFd
	pfd[0].Fd = int32(fd)
	if ev&loop.Readable != 0 {
		pfd[0].Events |= unix.POLLIN
	}
	if ev&loop.Writable != 0 {
		pfd[0].Events |= unix.POLLOUT
	}
	for {
		n, err := unix.Poll(pfd[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ev // let the caller's system call report it
		}
		if n == 0 {
			return 0
		}
		break
	}
	re := pfd[0].Revents
	var out loop.Events
	if re&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		return ev
	}
	if re&unix.POLLIN != 0 {
		out |= loop.Readable
	}
	if re&unix.POLLOUT != 0 {
		out |= loop.Writable
	}
	return out & ev
}
