//go:build linux && uring

package uring

import (
	"fmt"
	"math"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

// watcher is one Watch or WatchEdge: one poll request at a time in the
// kernel, named by its slot and generation. It is 32 bytes (a size class
// of the allocator): the state is one byte of flags, the fd and the slot
// 32-bit, and the generation lives here, not in the slot table, which
// holds only the pointer (see BenchmarkIdleWatch).
type watcher struct {
	l     *Loop
	cb    func(loop.Events)
	fd    int32
	slot  int32
	gen   uint32 // of the current request; genMask bits
	ev    loop.Events
	flags wflags
	// abandoned counts this watcher's requests cancelled by Modify or
	// Stop whose final completion has not been seen: each holds the fd's
	// file until then.
	abandoned uint8
}

// wflags is a watcher's state.
type wflags uint8

const (
	fEdge    wflags = 1 << iota // multishot poll (watchEdge)
	fLive                       // a request of the current generation is in the kernel (or in the SQ)
	fQueued                     // in l.arms
	fDead                       // its fd turned out closed: no request until Modify
	fStopped                    // Stop was called, or the loop closed
)

func (w *watcher) is(f wflags) bool { return w.flags&f != 0 }

func (w *watcher) set(f wflags, on bool) {
	if on {
		w.flags |= f
	} else {
		w.flags &^= f
	}
}

// Watch arms a level-triggered watcher for ev on fd: a one-shot poll
// request, submitted again after each completion, so that an fd that
// stays ready completes at once on every iteration (the kernel checks
// readiness when it arms a poll).
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return l.watch("watch", fd, ev, cb, false)
}

// watchEdge arms an edge-triggered watcher for ev on fd: one multishot
// poll request (IORING_POLL_ADD_MULTI) that completes each time the fd's
// wait queue is woken with one of ev, and once at registration if fd is
// already ready.
//
// The loop does not offer it as loop.EdgeWatcher, because it measured
// slower than the level-triggered watchers it would replace (see the
// package documentation): the kernel runs a poll request's wake-ups as
// task work of the thread that submitted it, and a multishot request is
// submitted once, from whatever thread the loop goroutine was on then,
// while a one-shot one goes out again from the thread that is about to
// wait for it. The tests and benchmarks keep it working and measured.
func (l *Loop) watchEdge(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return l.watch("watch edge", fd, ev, cb, true)
}

func (l *Loop) watch(op string, fd int, ev loop.Events, cb func(loop.Events), edge bool) (loop.IOWatcher, error) {
	switch {
	case l.closed:
		return nil, fmt.Errorf("uring: %s fd %d: %w", op, fd, loop.ErrClosed)
	case fd < 0 || fd > math.MaxInt32:
		return nil, fmt.Errorf("uring: %s fd %d: %w", op, fd, os.NewSyscallError("fcntl", unix.EBADF))
	case ev == 0 || ev&^(loop.Readable|loop.Writable) != 0:
		return nil, fmt.Errorf("uring: %s fd %d: events %#x: %w", op, fd, uint8(ev), os.ErrInvalid)
	case cb == nil:
		return nil, fmt.Errorf("uring: %s fd %d: nil callback: %w", op, fd, os.ErrInvalid)
	}
	// The poll request would report a bad fd only in its completion;
	// Watch says it now.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("uring: %s fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	w := &watcher{l: l, fd: int32(fd), ev: ev, cb: cb}
	w.set(fEdge, edge)
	w.slot, w.gen = l.watches.add(w, w.gen)
	w.queueArm()
	return w, nil
}

// queueArm has a request for w go out with the next enter.
func (w *watcher) queueArm() {
	if !w.is(fQueued) {
		w.set(fQueued, true)
		w.l.arms = append(w.l.arms, w)
	}
}

// flushArms writes the poll requests of the queued watchers that still
// need one.
func (l *Loop) flushArms() {
	if len(l.arms) == 0 {
		return
	}
	for i, w := range l.arms {
		l.arms[i] = nil
		w.set(fQueued, false)
		if w.is(fStopped|fLive|fDead) || w.ev == 0 || l.closed {
			continue
		}
		s := l.sqe()
		s.opcode = opPollAdd
		s.fd = w.fd
		s.opFlags = pollMask(w.ev)
		if w.is(fEdge) {
			s.len = pollAddMulti
		}
		s.userData = watchData(w.slot, w.gen)
		w.set(fLive, true)
	}
	l.arms = l.arms[:0]
}

// disarm abandons w's request: its generation changes, so nothing it
// completes is delivered, and a cancellation goes to the kernel with the
// next enter.
func (w *watcher) disarm() {
	l := w.l
	if w.is(fLive) {
		// IORING_OP_ASYNC_CANCEL, not POLL_REMOVE: a removal that finds
		// the request being woken at that moment fails with EALREADY and
		// leaves it armed, holding the fd's file (a closed socket then
		// never sends its FIN); a cancellation marks it cancelled in
		// every state.
		q := l.sqe()
		q.opcode = opAsyncCancel
		q.addr = watchData(w.slot, w.gen)
		q.userData = ignoreData
		w.set(fLive, false)
		if w.abandoned < 255 {
			w.abandoned++
		}
	}
	w.gen = (w.gen + 1) & genMask
}

// Events reports the armed events (0 once stopped).
func (w *watcher) Events() loop.Events {
	if w.is(fStopped) {
		return 0
	}
	return w.ev
}

// Modify changes the armed events; 0 pauses the watcher. Its request is
// replaced: a removal and a new poll go out with the next enter.
func (w *watcher) Modify(ev loop.Events) error {
	switch {
	case w.l.closed:
		return fmt.Errorf("uring: modify fd %d: %w", w.fd, loop.ErrClosed)
	case w.is(fStopped):
		return fmt.Errorf("uring: modify fd %d: %w", w.fd, ErrWatcherStopped)
	case ev&^(loop.Readable|loop.Writable) != 0:
		return fmt.Errorf("uring: modify fd %d: events %#x: %w", w.fd, uint8(ev), os.ErrInvalid)
	case ev == w.ev && !w.is(fDead):
		return nil
	}
	w.disarm()
	w.ev = ev
	w.set(fDead, false)
	if ev != 0 {
		w.queueArm()
	}
	return nil
}

// Stop cancels the watcher: once it returns, the callback never runs
// again, even for a completion already collected in this iteration (its
// generation is gone). Stop is idempotent.
func (w *watcher) Stop() error {
	if w.is(fStopped) {
		return nil
	}
	w.set(fStopped, true)
	l := w.l
	if l.closed || l.r == nil {
		return nil
	}
	w.disarm()
	l.watches.remove(w.slot, w.gen)
	if w.abandoned > 0 {
		// A pending poll holds a reference to the fd's file: until it
		// has completed, closing the fd does not close the socket (a
		// listener would still take connections, a datagram socket
		// still receive). Cancel now, not with the next enter, and wait
		// for the completions of this one and of those Modify replaced:
		// the caller closes the fd next.
		l.submitNow()
		l.awaitAbandoned(w.slot, int(w.abandoned))
	}
	return nil
}
