//go:build linux

package evio

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// stream is one accepted connection (loop.Stream).
//
// Writes do not go through evio at all while the kernel takes them: the
// writer's own goroutine writes to dfd, a close-on-exec duplicate of
// evio's fd, so a fast connection costs one syscall per Write and evio's
// closing its fd can never make such a write land on a reused descriptor.
// Only when the kernel buffer is full does the stream take one chunk
// (chunkSize) more and hand it to evio's output buffer — into an empty
// one only, checked on the evio goroutine, so evio's replacing of pending
// output can never drop a byte — and take nothing more until evio has
// written it (drain check after PreWrite), which gives Write its
// backpressure.
type stream struct {
	sv       *server
	c        evio.Conn    // immutable after opened
	ctx      any          // the handler's (loop.ContextStream); loop goroutine only
	inflight atomic.Int64 // bytes posted to the loop, not yet handled
	mu       sync.Mutex
	fd       int32 // evio's fd number: only the evio goroutine uses it
	dfd      int32 // our duplicate; -1 once closed (mu)
	refs     int32 // Control calls using dfd (mu)

	// pause holds pauseUser (SetReadPaused) and pauseSelf (inflight is
	// over inflightMax).
	pause atomic.Uint32
	tcp   bool // a TCP socket (else unix); immutable

	// Under mu.
	gone               bool
	closeReq           bool
	wrShut             bool // CloseWrite called
	closeWriteDeferred bool // shutdown(SHUT_WR) once evio's buffer drains
	held               bool // bytes taken that the kernel has not yet
	// detached: evio closed its fd at the peer's EOF and the stream lives
	// on through dfd alone, writable (salvage); writability is then
	// waited for with poll(2) by a watcher goroutine.
	detached     bool
	evioHoldsFD  bool // detached at its EOF, before evio closed its fd
	watching     bool
	closedPosted bool
	releasedDone bool
	inData       bool // a Data event's handler runs: dfd is held (holdData)

	// Evio goroutine only.
	rearmed     bool // detached, then back in evio's poller to close (closeEarly)
	evioGone    bool
	openPosted  bool
	closeHanded bool

	x *streamRare // under mu
}

const (
	pauseUser uint32 = 1 << iota
	pauseSelf
)

// streamRare is the part of a stream that only a stream in trouble needs
// (a full kernel buffer, an error, a Close that waits): allocated on first
// use, under mu, so that an idle stream does not carry it (TestStreamSize).
type streamRare struct {
	goneErr error
	// pendErr is a pending socket error (ECONNRESET) that evio's read or
	// the EOF check took from the kernel before the stream was detached:
	// the kernel reports it once, to the next read (or, on TCP, write),
	// so the detached stream does the same (ReadDirect, Write).
	pendErr error
	pend    []byte // the held chunk not yet handed to evio (or written)
	pendBuf []byte // pend's pooled buffer, back to chunkPool once sent
	// released is closed once the socket is gone from the process: our
	// duplicate closed, and evio's fd too (Close waits for it, as
	// close(2) would).
	released chan struct{}
	// sockErr is a pending socket error (ECONNRESET) that a MSG_PEEK
	// consumed: the kernel reports it once, so the stream reports it in
	// its place when evio then reads the EOF.
	sockErr error
}

// trimRareLocked drops st.x once nothing is left in it. st.mu held.
func (st *stream) trimRareLocked() {
	if x := st.x; x != nil && x.goneErr == nil && x.pendErr == nil && x.pend == nil && x.pendBuf == nil &&
		x.released == nil && x.sockErr == nil {
		st.x = nil
	}
}

// chunkPool holds the buffers of held chunks (chunkSize each): a stream
// holds one only while the kernel's buffer is full.
var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// rareLocked is st.x, allocated if need be. st.mu held.
func (st *stream) rareLocked() *streamRare {
	if st.x == nil {
		st.x = &streamRare{}
	}
	return st.x
}

// pendLocked is the held chunk not yet handed over. st.mu held.
func (st *stream) pendLocked() []byte {
	if st.x == nil {
		return nil
	}
	return st.x.pend
}

// takePendErrLocked returns the pending socket error, once. st.mu held.
func (st *stream) takePendErrLocked() error {
	if st.x == nil || st.x.pendErr == nil {
		return nil
	}
	err := st.x.pendErr
	st.x.pendErr = nil
	return err
}

// setPendErrLocked records a pending socket error. st.mu held.
func (st *stream) setPendErrLocked(err error) {
	if err != nil {
		st.rareLocked().pendErr = err
	}
}

// takePendErrIfDetachedLocked is takePendErrLocked for a detached
// stream, nil otherwise. st.mu held.
func (st *stream) takePendErrIfDetachedLocked() error {
	if !st.detached {
		return nil
	}
	return st.takePendErrLocked()
}

// goneErrLocked is the error evio closed the stream with. st.mu held.
func (st *stream) goneErrLocked() error {
	if st.x == nil {
		return nil
	}
	return st.x.goneErr
}

// freeChunkLocked returns the held chunk's buffer to the pool once
// nothing refers to it. st.mu held.
func (st *stream) freeChunkLocked() {
	if x := st.x; x != nil && x.pendBuf != nil {
		x.pend = nil
		chunkPool.Put((*[chunkSize]byte)(x.pendBuf[:chunkSize]))
		x.pendBuf = nil
		st.trimRareLocked()
	}
}

var (
	_ loop.DirectReadStream = (*stream)(nil)
	_ loop.ContextStream    = (*stream)(nil)
)

func newStream(sv *server, c evio.Conn) (*stream, error) {
	fd := connFD(c)
	dfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	// evio accepts without SOCK_CLOEXEC: children must not inherit it.
	unix.CloseOnExec(fd)
	st := &stream{sv: sv, c: c, fd: int32(fd), dfd: int32(dfd)}
	st.pause.Store(pauseUser)
	_, st.tcp = c.LocalAddr().(*net.TCPAddr) // the listener's
	return st, nil
}

// LocalAddr is the socket's own address (loop.Stream), asked of the kernel
// on each call (a stream spends no memory on it); once the socket is
// closed, evio's record of it (the listening address).
func (st *stream) LocalAddr() net.Addr { return st.addr(unix.Getsockname, st.c.LocalAddr) }

// RemoteAddr is the peer's address, as LocalAddr.
func (st *stream) RemoteAddr() net.Addr { return st.addr(unix.Getpeername, st.c.RemoteAddr) }

func (st *stream) addr(ask func(int) (unix.Sockaddr, error), evios func() net.Addr) net.Addr {
	st.mu.Lock()
	if st.dfd >= 0 {
		sa, err := ask(int(st.dfd))
		st.mu.Unlock()
		if err == nil {
			if a := sockaddrAddr(sa); a != nil {
				return a
			}
		}
	} else {
		st.mu.Unlock()
	}
	a := evios()
	if ta, ok := a.(*net.TCPAddr); ok && len(ta.IP) == net.IPv4len {
		// net's form of an IPv4 address is 16 bytes long; evio's is 4.
		return &net.TCPAddr{IP: ta.IP.To16(), Port: ta.Port, Zone: ta.Zone}
	}
	return a
}

func (st *stream) paused() bool { return st.pause.Load() != 0 }

// SetContext keeps v for the handler (loop.ContextStream). Loop
// goroutine.
func (st *stream) SetContext(v any) { st.ctx = v }

// Context returns the value SetContext kept (loop.ContextStream). Loop
// goroutine.
func (st *stream) Context() any { return st.ctx }

// deliver hands bytes evio read to the loop goroutine (or keeps them until
// the stream is announced). Evio goroutine only.
func (st *stream) deliver(p []byte) {
	if st.sv.borrow {
		p = borrowRead(p) // p is evio's shared buffer
	}
	n := st.inflight.Add(int64(len(p)))
	if n > inflightMax {
		st.pause.Or(pauseSelf)
	}
	if !st.openPosted {
		st.sv.early[st] = append(st.sv.early[st], p)
		return
	}
	st.sv.postData(st, p)
}

// consumed is called on the loop goroutine as n bytes go to the handler.
func (st *stream) consumed(n int64) {
	if st.inflight.Add(-n) <= inflightMax/2 && st.pause.Load()&pauseSelf != 0 &&
		st.pause.And(^pauseSelf)&pauseSelf != 0 {
		st.sv.applyLater(st)
	}
}

// SetReadPaused stops or resumes reading (loop.Stream).
func (st *stream) SetReadPaused(paused bool) {
	var was uint32
	if paused {
		was = st.pause.Or(pauseUser)
	} else {
		was = st.pause.And(^pauseUser)
	}
	if (was&pauseUser != 0) == paused {
		return
	}
	st.sv.applyLater(st)
}

// errEvioClosed is the write error once evio has closed the connection at
// the peer's EOF and it could not be kept open for writing (see salvage).
type errEvioClosed struct{}

func (errEvioClosed) Error() string {
	return "broken pipe (evio closed the connection at the peer's EOF)"
}

func (errEvioClosed) Unwrap() error { return syscall.EPIPE }

// writeErrLocked is the error of a write on a stream that cannot take it.
func (st *stream) writeErrLocked() error {
	switch {
	case st.closeReq:
		return net.ErrClosed
	case st.detached && st.dfd < 0:
		return net.ErrClosed
	case st.detached:
		if st.tcp {
			// (A unix socket's write looks at its shut-down sides only.)
			if err := st.takePendErrLocked(); err != nil {
				return os.NewSyscallError("write", err)
			}
		}
		if st.wrShut && st.closeWriteDeferred {
			return os.NewSyscallError("write", syscall.EPIPE)
		}
		return nil // the kernel answers (EPIPE, or an RST's error first)
	case st.gone && st.goneErrLocked() == nil:
		return os.NewSyscallError("write", errEvioClosed{})
	case st.gone:
		err := st.goneErrLocked()
		if errno, ok := err.(syscall.Errno); ok {
			return os.NewSyscallError("write", errno)
		}
		return err
	case st.wrShut && st.closeWriteDeferred:
		// The socket is not shut down yet: evio still writes the chunk
		// before it.
		return os.NewSyscallError("write", syscall.EPIPE)
	}
	return nil // after CloseWrite the kernel answers, as it answers net
}

// Write takes bytes without blocking (loop.Stream). Safe from any
// goroutine; the scheduler serialises writers.
func (st *stream) Write(p []byte) (int, bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.writeErrLocked(); err != nil {
		return 0, false, err
	}
	if st.held {
		return 0, true, nil
	}
	if p != nil && len(p) == 0 {
		// A write(2) of no bytes, as net's Write makes: the kernel
		// answers with a pending error, or EPIPE.
		_, err := unix.Write(int(st.dfd), p)
		for err == syscall.EINTR {
			_, err = unix.Write(int(st.dfd), p)
		}
		if err != nil {
			return 0, false, st.writeFailedLocked(err)
		}
		return 0, false, nil
	}
	nn := 0
	for nn < len(p) {
		end := min(len(p), nn+1<<30)
		n, err := unix.Write(int(st.dfd), p[nn:end])
		if n > 0 {
			nn += n
		}
		switch err {
		case nil:
			if n == 0 {
				return nn, false, io.ErrUnexpectedEOF
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			if st.detached {
				st.held = true
				st.watchLocked()
				return nn, true, nil
			}
			// The kernel is full: take one chunk more for evio to write.
			k := min(len(p)-nn, chunkSize)
			x := st.rareLocked()
			if x.pendBuf == nil {
				x.pendBuf = chunkPool.Get().(*[chunkSize]byte)[:0]
			}
			x.pend = append(x.pendBuf[:0], p[nn:nn+k]...)
			st.held = true
			st.sv.exec(st.handOut)
			return nn + k, true, nil
		default:
			return nn, false, st.writeFailedLocked(err)
		}
	}
	return nn, false, nil
}

// writeFailedLocked is the error of a write(2) that failed with err. A
// TCP socket that the peer reset fails with ECONNRESET once, then EPIPE:
// if evio's read took the reset just before (it reads ahead), the stream
// has it, or will once evio has handled that read's close (salvage), so
// EPIPE waits for the evio goroutine to catch up and reports the reset
// in its place, once. st.mu held (released meanwhile).
func (st *stream) writeFailedLocked(err error) error {
	if err == syscall.EPIPE && st.tcp && !st.detached && !st.gone {
		st.mu.Unlock()
		st.sv.sync()
		st.mu.Lock()
		if pe := st.takePendErrIfDetachedLocked(); pe != nil {
			err = pe
		} else if ge := st.goneErrLocked(); st.gone && ge != nil && !st.detached {
			if errno, ok := ge.(syscall.Errno); ok {
				err = errno
			}
		}
	}
	return os.NewSyscallError("write", err)
}

// handOut asks evio for a Data event on the connection, in which the held
// chunk is handed over. Evio goroutine (a command).
func (st *stream) handOut() {
	if st.evioGone {
		return
	}
	st.c.Wake()
	if afterWake != nil {
		afterWake(st.sv)
	}
	// evio's Wake can lose its wake-up (a race between its note queue and
	// its eventfd): the kick makes the next poll return at once, and that
	// iteration runs the note.
	st.sv.kick()
}

// afterWake, set only by tests, runs after handOut's Wake: StealWakes
// makes every wake-up lost, as evio's race loses some.
var afterWake func(sv *server)

// drained is called on the evio goroutine once evio has written all it
// held for the stream.
func (st *stream) drained() {
	st.mu.Lock()
	st.freeChunkLocked() // evio copied it and has written it
	st.unholdLocked()
	st.mu.Unlock()
	st.sv.postE(event{kind: evWritable, sv: st.sv, st: st})
}

// unholdLocked ends a hold: the chunk is written, Writes go to the kernel
// again, and a CloseWrite made meanwhile sends its FIN now. st.mu held.
func (st *stream) unholdLocked() {
	st.held = false
	if st.closeWriteDeferred && st.dfd >= 0 {
		st.closeWriteDeferred = false
		_ = unix.Shutdown(int(st.dfd), unix.SHUT_WR)
	}
}

// CloseWrite sends EOF after the bytes taken so far (loop.Stream).
func (st *stream) CloseWrite() error {
	st.mu.Lock()
	if st.held && !st.detached && !st.wrShut && !st.closeReq {
		// evio may have written its chunk already, before the kick has
		// looked: look now, so that the FIN goes out at once if so, as
		// net's does once its write has returned.
		st.mu.Unlock()
		st.sv.run(func() { st.sv.checkDrained(st) })
		st.mu.Lock()
	}
	defer st.mu.Unlock()
	if st.closeReq || st.dfd < 0 {
		return net.ErrClosed
	}
	if st.wrShut && !st.closeWriteDeferred {
		// Again, as net does: the kernel answers (ENOTCONN once the
		// connection is closed on both sides, else nothing).
		return os.NewSyscallError("shutdown", unix.Shutdown(int(st.dfd), unix.SHUT_WR))
	}
	if st.wrShut {
		return nil // the first one waits for evio's output to drain
	}
	st.wrShut = true
	if st.held {
		st.closeWriteDeferred = true
		return nil
	}
	return os.NewSyscallError("shutdown", unix.Shutdown(int(st.dfd), unix.SHUT_WR))
}

// ReadDirect reads the socket of a stream evio no longer reads
// (loop.DirectReadStream): detached at the peer's EOF, at a socket error,
// or by CloseRead. The kernel answers, as it answers net's reads: bytes,
// 0 (io.EOF), its pending error (reported once, here or by Write, as the
// kernel does), or EAGAIN.
func (st *stream) ReadDirect(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.closeReq || st.dfd < 0:
		return 0, net.ErrClosed
	case !st.detached:
		return 0, syscall.EAGAIN // evio still reads it: Data follows
	}
	if err := st.takePendErrLocked(); err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	for {
		n, err := unix.Read(int(st.dfd), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, err
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// CloseRead shuts down the socket's reading side, as net's CloseRead
// does (loop.DirectReadStream): the kernel answers (ENOTCONN once it has
// closed the connection; a unix peer's writes fail with EPIPE from then
// on). evio would read the EOF that the shutdown queues and close the
// connection, so the stream first leaves evio's poller (detach) and is
// read directly from then on; bytes evio read before go first, then an
// empty Data.
func (st *stream) CloseRead() error {
	st.mu.Lock()
	switch {
	case st.closeReq || st.dfd < 0:
		st.mu.Unlock()
		return net.ErrClosed
	case st.detached:
		err := unix.Shutdown(int(st.dfd), unix.SHUT_RD)
		st.mu.Unlock()
		return os.NewSyscallError("shutdown", err)
	}
	st.mu.Unlock()
	done := make(chan error, 1)
	st.sv.exec(func() { done <- st.closeRead() })
	select {
	case err := <-done:
		if err == nil {
			// evio's current batch may still hold a read event of this
			// stream, whose bytes (queued before the shutdown) evio then
			// delivers after the detach: they reach the handler before
			// CloseRead returns, so that no read asks the kernel first.
			st.sv.sync()
		}
		return err
	case <-st.sv.done:
		return net.ErrClosed // the server stopped: evio closed the conn
	}
}

// closeRead is CloseRead on the evio goroutine, where evio cannot read
// the socket between the shutdown and the detach.
func (st *stream) closeRead() error {
	sv := st.sv
	st.mu.Lock()
	if st.closeReq || st.dfd < 0 {
		st.mu.Unlock()
		return net.ErrClosed
	}
	err := os.NewSyscallError("shutdown", unix.Shutdown(int(st.dfd), unix.SHUT_RD))
	if err != nil || st.detached || st.evioGone {
		st.mu.Unlock()
		return err
	}
	defer st.mu.Unlock()
	if _, held := sv.holders[st]; !held && st.pendLocked() == nil {
		sv.detachLocked(st)
	}
	// Otherwise evio still holds output for it: it stays in evio's poller
	// until that is written, and the EOF evio then reads detaches it
	// (salvage).
	return nil
}

// Close closes the connection (loop.Stream): evio writes what it still
// holds, then closes its fd; Closed follows. A detached stream closes its
// own fd. Close returns once the socket is released, as close(2) does
// (a peer's write right after it fails), unless evio still holds output
// for a peer that does not read: net's kernel would flush that after
// close(2); here evio does, and the socket lives until it has.
func (st *stream) Close() error { return st.close(true) }

// close is Close; wait false is for the evio goroutine, which must not
// wait for itself.
func (st *stream) close(wait bool) error {
	st.mu.Lock()
	if st.closeReq {
		st.mu.Unlock()
		return net.ErrClosed
	}
	st.closeReq = true
	if st.detached {
		st.maybeCloseFD()
		early := st.evioHoldsFD
		st.mu.Unlock()
		if early {
			st.sv.exec(st.closeEarly)
		}
	} else {
		st.mu.Unlock()
		st.sv.exec(st.requestClose)
	}
	if wait {
		st.awaitRelease()
	}
	return nil
}

// awaitRelease waits until the socket is released, or evio's server has
// stopped (which closes every connection). evio runs a close only once
// the socket reports an event (writable, or hung up): while the kernel's
// send buffer is full, only the peer's reading would bring one, while
// net's close(2) takes effect at once. So a full socket is ended now
// (endLocked), as close(2) would end it, which also gives evio its event.
// It does not wait while evio holds output: that is written first, which
// takes the peer's reading, as net's kernel flushes after close(2) in the
// background.
func (st *stream) awaitRelease() {
	st.mu.Lock()
	full := st.held
	if !full && st.dfd >= 0 {
		pfd := []unix.PollFd{{Fd: st.dfd, Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, 0)
		if err != nil || n == 0 {
			full = !st.endLocked()
		}
	}
	var released chan struct{}
	// While a Data handler holds dfd (holdData) the release waits for it
	// to return, which a Close made by that handler must not wait for.
	if !full && !st.releasedDone && !st.inData {
		x := st.rareLocked()
		if x.released == nil {
			x.released = make(chan struct{})
		}
		released = x.released
	}
	st.mu.Unlock()
	if released == nil {
		return
	}
	select {
	case <-released:
	case <-st.sv.done:
	}
}

// endLocked does to the socket what close(2) of its last descriptor
// would, while evio's descriptor keeps it open: a TCP socket set to reset
// (SO_LINGER 0: bytes unread) is disconnected, which sends the RST and
// drops both queues; another TCP socket's FIN is queued behind its unsent
// bytes (shutdown of writing); a unix socket is shut down both ways, so
// its peer's writes fail with EPIPE and its reads end at EOF after what
// is queued. It reports whether the socket now reports an event to evio's
// poller (hung up, or writable once shut down). st.mu held, dfd open.
func (st *stream) endLocked() bool {
	fd := int(st.dfd)
	if !st.tcp {
		return unix.Shutdown(fd, unix.SHUT_RDWR) == nil
	}
	if l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER); err == nil && l.Onoff != 0 && l.Linger == 0 {
		return disconnect(fd) == nil
	}
	return unix.Shutdown(fd, unix.SHUT_WR) == nil
}

// disconnect is connect(2) with AF_UNSPEC, which on a TCP socket resets
// the connection as close(2) with SO_LINGER 0 does, and leaves the socket
// closed (it then polls as hung up) but open.
func disconnect(fd int) error {
	sa := unix.RawSockaddr{Family: unix.AF_UNSPEC}
	_, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	if errno != 0 {
		return errno
	}
	return nil
}

// checkReleased closes released once neither our duplicate nor evio's fd
// is open. st.mu held.
func (st *stream) checkReleased() {
	if st.releasedDone || st.dfd >= 0 || st.evioHoldsFD || !st.gone {
		return
	}
	st.markReleasedLocked()
}

// markReleasedLocked records that the socket is released and wakes a
// Close waiting for it. st.mu held.
func (st *stream) markReleasedLocked() {
	st.releasedDone = true
	if st.x != nil && st.x.released != nil {
		close(st.x.released)
	}
}

// closeEarly makes evio close its fd of a stream detached at its EOF
// (detachAtEOF), which it holds unpolled: the registration comes back,
// for writing only (a Data event then returns evio.Close, which evio runs
// before it would read the EOF). Evio goroutine.
func (st *stream) closeEarly() {
	st.mu.Lock()
	early := st.evioHoldsFD
	st.mu.Unlock()
	if !early {
		return // evio closed it already, as its server stopped
	}
	ev := &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: st.fd}
	st.rearmed = true
	if unix.EpollCtl(st.sv.epfd, unix.EPOLL_CTL_ADD, int(st.fd), ev) != nil {
		// evio keeps its fd until its server stops.
		st.mu.Lock()
		if !st.releasedDone {
			st.markReleasedLocked()
		}
		st.mu.Unlock()
		return
	}
	st.c.Wake()
	st.sv.kick()
}

// requestClose makes evio close the connection. Evio goroutine.
func (st *stream) requestClose() {
	if st.evioGone {
		return
	}
	st.mu.Lock()
	st.closeReq = true
	// (The scheduler's Close waits for the bytes handed over before it,
	// and resets for those it holds or gets after it.)
	st.resetIfInFlightLocked()
	st.mu.Unlock()
	st.handOut() // the Data event returns evio.Close
}

// resetIfInFlightLocked makes the close a reset if evio has read bytes
// not yet handed over: nobody will read them. st.mu held.
func (st *stream) resetIfInFlightLocked() {
	if st.inflight.Load() > 0 {
		st.resetOnCloseLocked()
	}
}

// resetOnCloseLocked makes the socket's close a reset (SO_LINGER 0), as
// net's Close of a connection with unread bytes is: the kernel resets for
// bytes it holds, and these were read out of it ahead of the application.
// Without effect on a unix socket (loop.CapUnixUnreadReset). st.mu held.
func (st *stream) resetOnCloseLocked() {
	if st.dfd >= 0 {
		_ = unix.SetsockoptLinger(int(st.dfd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
}

// holdData keeps dfd open (on) while a Data event's handler runs, and
// lets it close (off) once the handler returns. Loop goroutine.
func (st *stream) holdData(on bool) {
	st.mu.Lock()
	st.inData = on
	if on {
		st.refs++
	} else {
		st.refs--
		st.maybeCloseFD()
	}
	st.mu.Unlock()
}

// Control runs f with the stream's fd (loop.Stream).
func (st *stream) Control(f func(fd uintptr)) error {
	st.mu.Lock()
	if st.dfd < 0 {
		st.mu.Unlock()
		return net.ErrClosed
	}
	st.refs++
	fd := st.dfd
	st.mu.Unlock()
	f(uintptr(fd))
	st.mu.Lock()
	st.refs--
	st.maybeCloseFD()
	st.mu.Unlock()
	return nil
}

// maybeCloseFD closes our duplicate once evio has closed its fd (or, for
// a detached stream, once Close was called) and no Control call uses it.
// Closing it promptly matters: while it is open, the epoll registration of
// evio's closed fd survives and keeps reporting (unless salvage removed
// it). st.mu held.
func (st *stream) maybeCloseFD() {
	done := st.gone && (!st.detached || st.closeReq)
	if !done || st.refs > 0 || st.dfd < 0 {
		return
	}
	_ = unix.Close(int(st.dfd))
	st.dfd = -1
	st.checkReleased()
	if st.detached && !st.closedPosted {
		st.closedPosted = true
		st.sv.l.forgetDetached(st)
		st.sv.l.deliver(event{kind: evClosed, sv: st.sv, st: st})
	}
}

// watchLocked starts the goroutine that waits, with poll(2), until a
// detached stream is writable (evio no longer polls it). st.mu held.
func (st *stream) watchLocked() {
	if st.watching {
		return
	}
	st.watching = true
	l := st.sv.l
	l.watchers.Add(1)
	go func() {
		defer l.watchers.Done()
		st.watchWritable()
	}()
}

// watchWritable polls in slices of 10 ms, so that Close is noticed soon;
// once writable, it flushes a chunk the stream still held from before it
// was detached, then posts Writable.
func (st *stream) watchWritable() {
	for {
		st.mu.Lock()
		if st.closeReq || st.dfd < 0 {
			st.watching = false
			st.mu.Unlock()
			return
		}
		fd := st.dfd
		st.refs++
		st.mu.Unlock()
		pfd := []unix.PollFd{{Fd: fd, Events: unix.POLLOUT}}
		n, _ := unix.Poll(pfd, 10)
		st.mu.Lock()
		st.refs--
		ready := n > 0
		if pend := st.pendLocked(); ready && pend != nil && st.dfd >= 0 {
			m, err := unix.Write(int(st.dfd), pend)
			switch {
			case m > 0:
				st.x.pend = pend[m:]
				if m == len(pend) {
					st.freeChunkLocked()
				}
				ready = st.x.pend == nil
			case err != syscall.EAGAIN && err != syscall.EINTR:
				st.freeChunkLocked() // the next Write reports the error
			default:
				ready = false
			}
		}
		if ready {
			st.unholdLocked()
			st.watching = false
		}
		st.maybeCloseFD()
		st.mu.Unlock()
		if ready {
			st.sv.l.deliver(event{kind: evWritable, sv: st.sv, st: st})
			return
		}
	}
}
