//go:build linux

package evio

import (
	"syscall"
	"unsafe"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"
)

// The evio callbacks. evio runs them one at a time on its loop goroutine
// (the "evio goroutine"); Closed also runs on the Serve goroutine while the
// server stops, after the loop goroutine has exited.

func (sv *server) opened(c evio.Conn) (out []byte, opts evio.Options, action evio.Action) {
	defer sv.yield()
	if err := learnLayout(c); err != nil {
		sv.postE(event{kind: evListenerFailed, sv: sv, err: err})
		return nil, opts, evio.Shutdown
	}
	if c.AddrIndex() == 1 {
		if sv.kickConn != nil {
			return nil, opts, evio.Close // only our own end may connect
		}
		sv.kickConn = c
		sv.epfd, sv.wfd = epollFD(c), wakeFD(c)
		opts.ReuseInputBuffer = true // kick bytes are dropped at once
		sv.acceptOn = true           // evio armed the listener
		sv.applyAccept()             // listeners start paused
		close(sv.ready)
		return nil, opts, evio.None
	}
	if sv.lnClosed {
		return nil, opts, evio.Close
	}
	st, err := newStream(sv, c)
	if err != nil {
		return nil, opts, evio.Close // the client sees the connection closed
	}
	c.SetContext(st)
	sv.nstreams++
	opts.ReuseInputBuffer = sv.borrow // copied at once (stream.deliver)
	if !sv.fdHeadroom() {
		sv.applyAccept() // stop accepting before an accept fails
	}
	// evio arms the fd for reading right after Opened returns; the stream
	// starts paused, so pause it (and only then announce it) on the next
	// kick.
	sv.opening = append(sv.opening, st)
	sv.kick()
	return nil, opts, evio.None
}

func (sv *server) data(c evio.Conn, in []byte) (out []byte, action evio.Action) {
	defer sv.yield()
	if c == sv.kickConn {
		return sv.onKick()
	}
	st, ok := c.Context().(*stream)
	if !ok {
		return nil, evio.Close
	}
	if st.evioGone && !st.rearmed {
		// An event of evio's current batch, or a Wake, for a stream
		// that left evio's poller (detachLocked) before evio got to it:
		// evio must not re-arm it (epoll_ctl would fail, and evio
		// panics). Bytes it read still go to the handler, in order
		// (CloseRead waits for the batch to end before it returns).
		if len(in) > 0 {
			st.deliver(in)
		}
		return nil, evio.None
	}
	if len(in) > 0 {
		// Read after Close (looked at before the bytes go out: once
		// handed over, the application may read them and then close):
		// nobody will read them.
		st.mu.Lock()
		if st.closeReq {
			st.resetOnCloseLocked()
		}
		st.mu.Unlock()
		st.deliver(in)
		if afterRead != nil {
			afterRead(st)
		}
		if len(in) < evioPacket && sv.detachAtEOF(st) {
			return nil, evio.None
		}
		if st.paused() {
			sv.applyMask(st) // evio does not re-arm after a read that returns nothing
		}
	}
	st.mu.Lock()
	if pend := st.pendLocked(); pend != nil && outLen(c) == 0 {
		// Only into an empty evio buffer: output handed back replaces
		// whatever evio still holds (the byte-loss defect). evio copies
		// it; the buffer goes back to the pool once evio has written it
		// (drained).
		out, st.x.pend = pend, nil
		sv.holders[st] = struct{}{}
	}
	if st.closeReq || st.closeHanded {
		// evio flushes its output first. Every Data event returns it
		// again: evio overwrites the action with each event's, so a
		// later Wake answered with None would cancel the close.
		action = evio.Close
		st.closeHanded = true
		// A Close that came while this event read: its bytes are not
		// handed over, and evio closes before they are (the fd the
		// handler could reset through is gone by then).
		st.resetIfInFlightLocked()
	}
	st.mu.Unlock()
	if (out != nil || action != evio.None) && st.paused() {
		// evio re-arms reading (EPOLLIN|EPOLLOUT) after this returns.
		sv.dirty[st] = struct{}{}
		sv.kick()
	}
	return out, action
}

func (sv *server) closed(c evio.Conn, err error) evio.Action {
	defer sv.yield()
	action := sv.closedConn(c, err)
	if openConns(c) == 0 && !sv.isolated && goid() == sv.serveGoid {
		sv.isolate() // evio's loop has exited and is closing the rest
	}
	return action
}

func (sv *server) closedConn(c evio.Conn, err error) evio.Action {
	if c == sv.kickConn {
		sv.kickConn = nil
		return evio.None
	}
	st, ok := c.Context().(*stream)
	if !ok {
		return evio.None
	}
	if st.detached {
		st.mu.Lock()
		st.evioHoldsFD = false // detached at its EOF: this close is no news
		if errno, ok := err.(syscall.Errno); ok && errno != syscall.EPIPE {
			// ...but for the pending socket error (the peer's reset) that
			// evio's read took for an event of its batch after the stream
			// had left its poller (CloseRead): the kernel reports it
			// once, so the stream does, to the next read or TCP write.
			st.setPendErrLocked(errno)
		}
		st.checkReleased()
		st.mu.Unlock()
		return sv.idleAction()
	}
	sv.nstreams--
	if _, held := sv.holders[st]; held {
		// evio reads only once its output is written (a read of the EOF
		// comes after the chunk went out), or closes at a write's error
		// (the chunk is lost with the connection): either way it holds
		// nothing more, and the stream must not wait for it (a deferred
		// CloseWrite, a Write) before a salvage keeps it open.
		delete(sv.holders, st)
		st.drained()
	}
	delete(sv.dirty, st)
	st.evioGone = true
	if !st.openPosted && sv.lnClosed {
		st.mu.Lock()
		st.gone = true
		st.maybeCloseFD()
		st.mu.Unlock()
		delete(sv.early, st)
		return sv.idleAction() // never announced: nobody to tell
	}
	if !st.openPosted {
		sv.announce(st)
	}
	if err == nil {
		st.mu.Lock()
		if st.x != nil && st.x.sockErr != nil {
			err = st.x.sockErr // a MSG_PEEK consumed it (detachAtEOF)
		}
		st.mu.Unlock()
	}
	if sv.salvage(st, err) {
		sv.postE(event{kind: evEOF, sv: sv, st: st}) // still writable
		return sv.idleAction()
	}
	st.mu.Lock()
	st.gone = true
	if err != nil {
		st.rareLocked().goneErr = err
	}
	st.maybeCloseFD()
	st.mu.Unlock()
	sv.postE(event{kind: evClosed, sv: sv, st: st, err: err})
	return sv.idleAction()
}

// evioPacket is the size of evio's read buffer: a read that returns less
// drained the socket.
const evioPacket = 0xFFFF

// detachAtEOF checks, after a read that drained the socket, whether the
// peer's EOF is already queued (MSG_PEEK returns 0). evio would read it
// next and close the connection; instead the stream leaves evio's poller
// now, while evio's fd is still open and its registration can be deleted
// without any race, and lives on its duplicate (detached), writable as
// net's conns are after the peer's CloseWrite. evio keeps its fd, unpolled,
// until its server stops. Evio goroutine, in Data.
func (sv *server) detachAtEOF(st *stream) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closeReq || st.dfd < 0 || st.pendLocked() != nil {
		return false
	}
	if _, held := sv.holders[st]; held {
		return false // evio still holds output for it
	}
	n, err := peekByte(int(st.dfd))
	if err == unix.EAGAIN || err == unix.EINTR || (err == nil && n != 0) {
		return false
	}
	// The EOF, or a pending socket error (the peer's reset), which the
	// kernel reports once: the peek took it, so the stream reports it in
	// its place (pendErr), or, if it stays in evio, when evio reads the
	// EOF (sockErr).
	if !sv.detachLocked(st) {
		if err != nil {
			st.rareLocked().sockErr = err
		}
		return false
	}
	st.setPendErrLocked(err)
	return true
}

// peekByte is recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT) without
// unix.Recvfrom's allocation of a source address: it runs after most of
// evio's reads.
func peekByte(fd int) (int, error) {
	var b [1]byte
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// detachLocked makes the stream leave evio's poller while evio's fd is
// open (so the registration is deleted without any race) and live on its
// duplicate: read directly (ReadDirect), written directly. evio keeps its
// fd, unpolled, until the stream's Close (closeEarly) or its server
// stops. An empty Data tells the handler, after the bytes evio read.
// Evio goroutine, st.mu held, the stream not closing.
func (sv *server) detachLocked(st *stream) bool {
	if unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_DEL, int(st.fd), nil) != nil {
		return false
	}
	sv.nstreams--
	delete(sv.dirty, st)
	st.evioGone = true
	st.detached, st.gone, st.evioHoldsFD = true, true, true
	sv.l.rememberDetached(st)
	if st.openPosted {
		sv.postE(event{kind: evEOF, sv: sv, st: st})
	} else {
		sv.early[st] = append(sv.early[st], nil) // announce delivers the EOF after the bytes
	}
	return true
}

// salvage keeps a connection whose peer sent EOF open for writing, as net
// does (the peer may only have half-closed it): evio has just closed its
// fd N at the EOF, but our duplicate keeps the socket, and with it evio's
// epoll registration of (socket, N), which would report the EOF for ever.
// fcntl(F_DUPFD, N) returns N itself only while N is still free — it never
// clobbers a descriptor another goroutine opened meanwhile — and with it
// the stale registration is deleted; if another thread took N meanwhile,
// deleteStale deletes it through a private descriptor table. The stream
// then lives on its duplicate alone (detached). Only if that fails
// (unshare refused) does the stream end as evio ended it (writes fail
// with EPIPE). A socket error evio's read took
// (err, the peer's reset) is the kernel's to report once: the detached
// stream reports it to the next read or write. Evio goroutine, in Closed.
func (sv *server) salvage(st *stream, err error) bool {
	errno, ok := err.(syscall.Errno)
	if err != nil && (!ok || errno == syscall.EPIPE) {
		return false // not a pending socket error: evio's write failed
	}
	if sv.stopReq.Load() || sv.epfd < 0 || goid() == sv.serveGoid {
		return false // the server is stopping: this was no peer's EOF
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closeReq || st.dfd < 0 {
		return false
	}
	if beforeSalvage != nil {
		beforeSalvage(sv.epfd, int(st.fd))
	}
	n, ferr := unix.FcntlInt(uintptr(st.dfd), unix.F_DUPFD_CLOEXEC, int(st.fd))
	if ferr != nil {
		return false
	}
	if n == int(st.fd) {
		_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_DEL, n, nil)
		_ = unix.Close(n)
	} else {
		_ = unix.Close(n)
		if deleteStale(sv.epfd, int(st.fd), int(st.dfd)) != nil {
			return false
		}
	}
	st.detached, st.gone = true, true
	st.setPendErrLocked(err)
	sv.l.rememberDetached(st)
	if st.held {
		st.watchLocked() // flush what evio never got
	}
	return true
}

// beforeSalvage, set only by tests, runs in salvage with evio's poller
// and the number evio has just closed: a test takes the number, as
// another thread might.
var beforeSalvage func(epfd, fd int)

// afterRead, set only by tests, runs in a Data event after its bytes went
// out to the loop goroutine and before the event decides evio's action.
var afterRead func(st *stream)

// postE delivers e to the loop from the evio goroutine (or, while the
// server stops, the Serve goroutine). With one P the loop goroutine it
// readies would wait for sysmon, so the callback yields (see yield).
func (sv *server) postE(e event) {
	if sv.oneP {
		sv.batch.Ran()
	}
	sv.l.deliver(e)
}

// yield lets the goroutines that commands of other goroutines readied run
// before evio blocks its thread in epoll_wait again: readied goroutines
// sit in this P's runnext slot, and a thread blocked in a system call can
// strand them there until sysmon takes the P away (20 µs to 10 ms later).
// Measured
// (BenchmarkWorkarounds/kick): a command's round trip 56 µs without, 9 µs
// with. After posting events it yields only when the process has one P
// (GOMAXPROCS=1, the bench's servers): there, on evhub bench, server CPU
// per round trip against raw evio is 0.81× with the yield and 0.66×
// without (pingpong-1), 0.89× and 0.75× (pingpong-64); with more Ps another P steals the
// loop goroutine soon enough, and yielding made a one-connection echo
// slower (BenchmarkEchoPingPong, GOMAXPROCS=2: 103 against 88 µs).
func (sv *server) yield() { sv.batch.Yield() }

// idleAction stops the server once its listener is closed and its last
// connection gone.
func (sv *server) idleAction() evio.Action {
	if sv.stopReq.Load() || (sv.lnClosed && sv.nstreams == 0) {
		return evio.Shutdown
	}
	return evio.None
}

// preWrite is evio's PreWrite: it is about to write some connection's
// buffered output. Whether that drained it is known only after the write,
// so look on the next iteration.
func (sv *server) preWrite() {
	if len(sv.holders) > 0 {
		sv.checkNeeded = true
		sv.kick()
	}
}

// announce posts Opened and any bytes read before it.
func (sv *server) announce(st *stream) {
	st.openPosted = true
	sv.postE(event{kind: evOpened, sv: sv, st: st})
	early := sv.early[st]
	delete(sv.early, st)
	for _, p := range early {
		sv.postData(st, p)
	}
}

// postData delivers bytes evio read (an empty p: the EOF).
func (sv *server) postData(st *stream, p []byte) {
	sv.postE(event{kind: evData, sv: sv, st: st, p: p})
}

// applyMask sets the stream's epoll interest on evio's poller to what the
// stream wants: reading unless paused, writing while evio holds output or
// has an action to run. Evio goroutine only.
func (sv *server) applyMask(st *stream) {
	if st.evioGone || sv.epfd < 0 {
		return
	}
	var ev uint32
	if !st.paused() {
		ev |= unix.EPOLLIN
	}
	if outLen(st.c) > 0 || st.closeHanded {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_MOD, int(st.fd), &unix.EpollEvent{Events: ev, Fd: st.fd})
}
