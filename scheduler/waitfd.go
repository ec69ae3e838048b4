package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Waiting on any fd: gevent's wait_read and wait_write, for an fd the hub
// does not own (a pipe, a tty, an eventfd, an inotify fd, another
// library's socket). Each wait arms a level-triggered watcher of its own
// on the hub's loop and removes it before returning, so the caller may
// close the fd as soon as the wait is over; backends allow several
// watchers on one fd, so waits in both directions, or from several
// callers, do not interfere.

// ErrNotPollable is the error (wrapped) for an fd that readiness cannot
// describe: a regular file or a directory, which poll(2) reports always
// ready and epoll refuses. Read such a file directly, or through Blocking
// from a task.
var ErrNotPollable = errors.New("not pollable: a regular file or directory is always ready for I/O (read it directly, or through Blocking from a task)")

// hubExtras is the hub's state for resolution and fd waits.
type hubExtras struct {
	resolver atomic.Pointer[net.Resolver]

	mu     sync.Mutex
	closed bool
	waits  map[*fdWait]struct{}
}

func (x *hubExtras) addWait(fw *fdWait) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return false
	}
	if x.waits == nil {
		x.waits = map[*fdWait]struct{}{}
	}
	x.waits[fw] = struct{}{}
	return true
}

func (x *hubExtras) removeWait(fw *fdWait) {
	x.mu.Lock()
	delete(x.waits, fw)
	x.mu.Unlock()
}

// close ends every pending fd wait with ErrHubClosed; called by Hub.Close
// while the loop still runs.
func (x *hubExtras) close() {
	x.mu.Lock()
	x.closed = true
	ws := make([]*fdWait, 0, len(x.waits))
	for fw := range x.waits {
		ws = append(ws, fw)
	}
	x.mu.Unlock()
	for _, fw := range ws {
		fw.finish(fwClosed)
	}
}

// Why an fd wait ended.
const (
	fwPending int32 = iota
	fwReady
	fwDeadline
	fwClosed
	fwFailed
	fwAbandoned
)

type fdWait struct {
	h   *Hub
	fd  int
	ev  loop.Events
	w   *waiter
	res atomic.Int32
	got loop.Events // written before res becomes fwReady
	err error       // written before res becomes fwFailed

	// Loop goroutine only.
	iow  loop.IOWatcher
	dead bool
}

func (fw *fdWait) finish(r int32) {
	if fw.res.CompareAndSwap(fwPending, r) {
		fw.w.wake()
	}
}

func (fw *fdWait) register() {
	if fw.dead || fw.res.Load() != fwPending {
		return
	}
	iow, err := fw.h.loop.Watch(fw.fd, fw.ev, fw.fire)
	if err != nil {
		fw.err = err
		fw.finish(fwFailed)
		return
	}
	fw.iow = iow
}

// fire runs on the loop goroutine when the loop reports fd ready. The
// contract lets a loop report readiness that is gone (or never was) by
// the time the callback runs, so the fd is asked once more (poll(2), no
// wait): a spurious event leaves the watcher armed and the wait pending.
func (fw *fdWait) fire(loop.Events) {
	if fw.res.Load() != fwPending {
		fw.stop()
		return
	}
	got, err := pollNow(fw.fd, fw.ev)
	if err == nil && got == 0 {
		return
	}
	fw.stop()
	if err != nil {
		fw.err = err
		fw.finish(fwFailed)
		return
	}
	fw.got = got
	fw.finish(fwReady)
}

// stop removes the watcher; on the loop goroutine.
func (fw *fdWait) stop() {
	fw.dead = true
	if fw.iow != nil {
		_ = fw.iow.Stop()
		fw.iow = nil
	}
}

// WaitRead waits until fd is readable; see WaitFD.
func (h *Hub) WaitRead(ctx context.Context, fd int, deadline time.Time) error {
	_, err := h.WaitFD(ctx, fd, loop.Readable, deadline)
	return err
}

// WaitWrite waits until fd is writable; see WaitFD.
func (h *Hub) WaitWrite(ctx context.Context, fd int, deadline time.Time) error {
	_, err := h.WaitFD(ctx, fd, loop.Writable, deadline)
	return err
}

// WaitFD waits until fd is ready for one of ev (loop.Readable,
// loop.Writable or both) and returns the directions that are. It parks
// the calling task (or goroutine) on the hub's loop; fd is any pollable fd
// the caller owns, not one of the hub's own sockets or files (use their
// methods). Error and hang-up conditions count as ready, so the next
// syscall on fd reports them. Some backends put fd in non-blocking mode.
//
// The wait ends with os.ErrDeadlineExceeded once deadline (if not zero)
// has passed, with ctx's error (or, in a task, the task's context's) when
// it ends, and with an error wrapping net.ErrClosed (ErrHubClosed) when
// the hub closes. A bad fd is an *os.SyscallError wrapping EBADF; a
// regular file or directory wraps ErrNotPollable; a backend that cannot
// watch fds (evio) returns an error wrapping errors.ErrUnsupported. When
// WaitFD returns, the hub no longer watches fd: the caller may close it.
func (h *Hub) WaitFD(ctx context.Context, fd int, ev loop.Events, deadline time.Time) (loop.Events, error) {
	if ctx == nil {
		return 0, fmt.Errorf("evhub: WaitFD with a nil context: %w", os.ErrInvalid)
	}
	if ev == 0 || ev&^(loop.Readable|loop.Writable) != 0 {
		return 0, fmt.Errorf("evhub: WaitFD fd %d: events %#x: want Readable, Writable or both: %w", fd, uint8(ev), os.ErrInvalid)
	}
	if h.closed.Load() {
		return 0, ErrHubClosed
	}
	if err := h.checkWatch(); err != nil {
		return 0, err
	}
	t := currentTask()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if t != nil {
		if err := t.ctx.Err(); err != nil {
			return 0, err
		}
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return 0, os.ErrDeadlineExceeded
	}
	if err := checkPollable(fd); err != nil {
		return 0, err
	}
	if got, err := pollNow(fd, ev); err != nil || got != 0 {
		return got, err
	}
	fw := &fdWait{h: h, fd: fd, ev: ev, w: &waiter{t: t}}
	if t == nil {
		fw.w.ch = make(chan struct{}, 1)
	}
	if !h.x.addWait(fw) {
		return 0, ErrHubClosed
	}
	defer h.x.removeWait(fw)
	if t != nil && t.h == h {
		fw.register() // a task of h runs on its loop goroutine
	} else if err := h.post(fw.register); err != nil {
		return 0, err
	}
	if !deadline.IsZero() {
		tm := time.AfterFunc(time.Until(deadline), func() { fw.finish(fwDeadline) })
		defer tm.Stop()
	}
	werr := fw.w.wait(ctx)
	if werr != nil {
		fw.finish(fwAbandoned)
	}
	r := fw.res.Load()
	if r == fwReady {
		return fw.got, nil // the callback has removed the watcher
	}
	// Remove the watcher before returning, so that the caller may close
	// fd at once (a closed loop watches nothing any more).
	_ = h.call(fw.stop)
	switch r {
	case fwDeadline:
		return 0, os.ErrDeadlineExceeded
	case fwClosed:
		return 0, ErrHubClosed
	case fwFailed:
		return 0, fw.err
	}
	return 0, werr
}

// checkPollable rejects a bad fd (EBADF) and fds readiness cannot
// describe.
func checkPollable(fd int) error {
	if fd < 0 {
		return os.NewSyscallError("fstat", syscall.EBADF)
	}
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
		return fmt.Errorf("evhub: fd %d: %w", fd, ErrNotPollable)
	}
	return nil
}

// pollNow reports the directions of ev in which fd is ready now, without
// waiting: a wait on a ready fd costs one poll(2) and no loop round trip.
func pollNow(fd int, ev loop.Events) (loop.Events, error) {
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	if ev&loop.Readable != 0 {
		pfd[0].Events |= unix.POLLIN
	}
	if ev&loop.Writable != 0 {
		pfd[0].Events |= unix.POLLOUT
	}
	var n int
	err := ignoringEINTR(func() (err error) { n, err = unix.Poll(pfd, 0); return err })
	if err != nil {
		return 0, os.NewSyscallError("poll", err)
	}
	if n == 0 {
		return 0, nil
	}
	re := pfd[0].Revents
	if re&unix.POLLNVAL != 0 {
		return 0, os.NewSyscallError("fstat", syscall.EBADF)
	}
	var got loop.Events
	if re&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
		got |= loop.Readable
	}
	if re&(unix.POLLOUT|unix.POLLHUP|unix.POLLERR) != 0 {
		got |= loop.Writable
	}
	return got & ev, nil
}
