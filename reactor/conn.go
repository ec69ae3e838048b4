package reactor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Conn is one connection of a Server. Unless a method says otherwise it
// may only be called on the connection's loop goroutine: from a Handler
// callback, or from a function given to Post.
//
// Memory: an idle connection is this struct, the loop's watcher and
// nothing else. Input left over from OnData and output the kernel has not
// taken live in pooled buffers that are returned the moment they empty.
type Conn struct {
	el  *eventLoop
	ctx any
	b   *connBufs  // input left over and output pending; nil when there is neither
	x   *connExtra // what only some connections use; nil until one does

	// backlog is the output AsyncWrite has queued and the loop not yet
	// buffered, plus the buffered output as last published (published),
	// so that other goroutines can see it without locking.
	backlog atomic.Int64

	fd        int32
	flags     uint32
	idx       int32 // position in the loop's conns
	published int32
}

// watchedConn is a connection on a loop without a loop.Completer: a Conn
// and its loop.IOWatcher or (fStream) its loop.Stream, an interface value
// stored as is, where a wrapper type would cost an allocation per
// connection. A Completer's receive is named by the fd (fRecv) and its
// callbacks find the connection by fd (eventLoop.byFD), so those
// connections are a bare Conn, one size class (16 bytes) smaller
// (TestConnSize). Which one a connection is is fixed when it is made
// (newConn): fComp marks the bare ones.
type watchedConn struct {
	Conn
	w any
}

// newConn makes el's connection of fd (-1 for a stream), bare on a loop
// with a Completer.
func (el *eventLoop) newConn(fd int, flags uint32) *Conn {
	if el.comp != nil && flags&fStream == 0 {
		return &Conn{el: el, fd: int32(fd), flags: flags | fComp}
	}
	return &(&watchedConn{Conn: Conn{el: el, fd: int32(fd), flags: flags}}).Conn
}

// watcher is where a connection made without fComp keeps its watcher or
// stream; nil for a bare Conn.
func (c *Conn) watcher() *any {
	if c.flags&fComp != 0 {
		return nil
	}
	// The Conn is the first field of the watchedConn newConn made.
	return &(*watchedConn)(unsafe.Pointer(c)).w
}

// connBufs holds a connection's pooled buffers: live bytes are
// in[inHead:] and out[outHead:]. It goes back to its loop as soon as both
// are empty, so an idle connection holds neither the buffers nor this.
type connBufs struct {
	in, out         []byte
	inHead, outHead int32
	// sending is the length of out[outHead:] given to a loop.Completer's
	// Send and not yet completed: those bytes must not move.
	sending int32
}

// connExtra holds what only some connections need, so that the others do
// not pay for it.
type connExtra struct {
	reason error // why a closing connection closes

	timer            loop.Timer
	readTO, idleTO   time.Duration
	lastIn, lastOut  int64 // mono()
	waits            []asyncWait
	queued, written  uint64 // output counters while waits is not empty
	handover         *handover
	laddr, raddr     net.Addr
	streamAddrCached bool
}

type asyncWait struct {
	end uint64
	cb  func(c *Conn, err error)
}

const (
	fOpen     uint32 = 1 << iota // OnOpen has run
	fClosed                      // finished: OnClose has run, fd released
	fClosing                     // close once the output is sent
	fPeerEOF                     // the peer's EOF was read
	fShutWR                      // CloseWrite asked
	fShutDone                    // shutdown(SHUT_WR) done
	fDirty                       // in the loop's dirty list
	fPausedBP                    // reading paused: output past HighWater
	fArmedR                      // Readable armed
	fArmedW                      // Writable armed (or, on streams, output held)
	fStream                      // a StreamServer connection
	fOverHW                      // output passed HighWater: OnDrain due at LowWater
	fComp                        // I/O through the loop's Completer (Recv, Send)
	fUnseen                      // input holds bytes OnData has not seen (received as a Recv stopped)
	fRecv                        // the Completer's receive of fd is on
	fGiven                       // fd handed over: finishClose leaves it open
)

var clockBase = time.Now()

func mono() int64 { return int64(time.Since(clockBase)) }

func (c *Conn) extra() *connExtra {
	if c.x == nil {
		c.x = &connExtra{}
	}
	return c.x
}

func (c *Conn) pending() int {
	if c.b == nil {
		return 0
	}
	return len(c.b.out) - int(c.b.outHead)
}

// bufs returns the connection's buffers, taking a connBufs from the loop
// if it has none.
func (c *Conn) bufs() *connBufs {
	if c.b == nil {
		c.b = c.el.getBufs()
	}
	return c.b
}

// dropIn and dropOut return an emptied buffer to the pool, and the
// connBufs to the loop once both are gone.
func (c *Conn) dropIn() {
	b := c.b
	c.el.putBuf(b.in)
	b.in, b.inHead = nil, 0
	if b.out == nil {
		c.b = nil
		c.el.putBufs(b)
	}
}

func (c *Conn) dropOut() {
	b := c.b
	c.el.putBuf(b.out)
	b.out, b.outHead = nil, 0
	if b.in == nil {
		c.b = nil
		c.el.putBufs(b)
	}
}

func (c *Conn) netName() string {
	if c.flags&fStream != 0 {
		if _, ok := c.stream().LocalAddr().(*net.UnixAddr); ok {
			return "unix"
		}
		return "tcp"
	}
	if sa, err := unix.Getsockname(int(c.fd)); err == nil {
		if _, ok := sa.(*unix.SockaddrUnix); ok {
			return "unix"
		}
	}
	return "tcp"
}

func (c *Conn) closedErr(op string) error {
	return &net.OpError{Op: op, Net: c.netName(), Err: net.ErrClosed}
}

// --- the input view ---

// input returns the unread input: during this connection's OnData the
// loop's view, otherwise the leftover buffer.
func (c *Conn) input() []byte {
	if c.el.cur == c {
		return c.el.view
	}
	if c.b == nil {
		return nil
	}
	return c.b.in[c.b.inHead:]
}

func (c *Conn) consume(n int) {
	if c.el.cur == c {
		c.el.view = c.el.view[n:]
		return
	}
	if n == 0 {
		return
	}
	b := c.b
	b.inHead += int32(n)
	if int(b.inHead) == len(b.in) {
		c.dropIn()
	}
}

// Peek returns the next n bytes of input without taking them (all of it
// if n < 0). If fewer than n are buffered it returns them all with
// io.ErrShortBuffer. The slice is valid until the callback returns; it is
// read-only and must not be kept (copy what you keep).
func (c *Conn) Peek(n int) ([]byte, error) {
	in := c.input()
	if n < 0 || n == len(in) {
		return in, nil
	}
	if n > len(in) {
		return in, io.ErrShortBuffer
	}
	return in[:n], nil
}

// Next takes the next n bytes of input (all of it if n < 0) and returns
// them; with fewer than n buffered it takes them all and returns
// io.ErrShortBuffer. Lifetime as for Peek: the bytes stay valid until the
// callback returns, even though they are taken.
func (c *Conn) Next(n int) ([]byte, error) {
	b, err := c.Peek(n)
	c.consume(len(b))
	return b, err
}

// Discard drops the next n bytes of input (all of it if n < 0) and
// reports how many it dropped; io.ErrShortBuffer if fewer than n were
// buffered.
func (c *Conn) Discard(n int) (int, error) {
	b, err := c.Peek(n)
	c.consume(len(b))
	return len(b), err
}

// InboundBuffered is the number of input bytes not yet taken.
func (c *Conn) InboundBuffered() int { return len(c.input()) }

// --- output ---

func (c *Conn) writable(op string) error {
	if c.flags&(fClosed|fClosing|fShutWR) != 0 {
		return c.closedErr(op)
	}
	return nil
}

func (c *Conn) markDirty() {
	if c.flags&fDirty == 0 {
		c.flags |= fDirty
		c.el.dirty = append(c.el.dirty, c)
	}
}

func (c *Conn) buffer(p []byte) {
	if len(p) == 0 {
		return
	}
	b := c.bufs()
	if b.out == nil {
		b.out = append(c.el.getBuf(len(p)), p...)
	} else if b.sending > 0 {
		// The bytes in the kernel's hands stay where they are: append,
		// or copy everything to a bigger buffer and leave the old one to
		// the send (and then to the garbage collector).
		if len(b.out)+len(p) <= cap(b.out) {
			b.out = append(b.out, p...)
		} else {
			nb := getBuf(2 * (len(b.out) - int(b.outHead) + len(p)))
			nb = append(nb, b.out[b.outHead:]...)
			b.out, b.outHead = append(nb, p...), 0
		}
	} else {
		var head int
		b.out, head = appendBuf(b.out, int(b.outHead), p)
		b.outHead = int32(head)
	}
	if c.x != nil && len(c.x.waits) > 0 {
		c.x.queued += uint64(len(p))
	}
	c.markDirty()
}

// Write buffers p; the connection's output is sent when the current
// callback returns, in one system call for everything the callback
// wrote. p may be reused as soon as Write returns. Write fails with
// net.ErrClosed (in a *net.OpError) after Close or CloseWrite. It never
// refuses bytes for backpressure: OutboundBuffered, HighWater and
// DrainHandler tell a producer when to stop.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.writable("write"); err != nil {
		return 0, err
	}
	c.buffer(p)
	return len(p), nil
}

// Writev buffers every slice of bufs in order, like Write.
func (c *Conn) Writev(bufs [][]byte) (int, error) {
	if err := c.writable("write"); err != nil {
		return 0, err
	}
	n := 0
	for _, b := range bufs {
		c.buffer(b)
		n += len(b)
	}
	return n, nil
}

// OutboundBuffered is the number of bytes written and not yet taken by the
// kernel.
func (c *Conn) OutboundBuffered() int { return c.pending() }

// AsyncWrite queues p for the connection from any goroutine. The loop
// buffers it in order with everything else written to the connection and
// calls cb (if not nil) on the loop goroutine once the kernel has taken
// all of p, or with an error if the connection closed first. p is read on
// the loop goroutine: do not modify it until cb has been called.
//
// If the connection's output (queued and buffered) is past
// Options.HighWater, nothing is queued and the error wraps
// ErrBackpressure; a write to an idle connection is always queued, however
// large. After the server closed the error is ErrServerClosed.
func (c *Conn) AsyncWrite(p []byte, cb func(c *Conn, err error)) error {
	backlog := c.backlog.Load()
	if backlog > 0 && backlog+int64(len(p)) > int64(c.el.s.opt.HighWater) {
		return fmt.Errorf("reactor: AsyncWrite of %d bytes with %d pending: %w", len(p), backlog, ErrBackpressure)
	}
	c.backlog.Add(int64(len(p)))
	if err := c.el.enqueue(task{kind: taskWrite, c: c, p: p, cb: cb}); err != nil {
		c.backlog.Add(-int64(len(p)))
		return err
	}
	return nil
}

// Post runs fn(c) on the connection's loop goroutine; safe from any
// goroutine. Output fn writes is sent when it returns. fn is not called if
// the connection closes first; the error is ErrServerClosed after the
// server closed.
func (c *Conn) Post(fn func(c *Conn)) error {
	if fn == nil {
		return errors.New("reactor: Conn.Post with a nil function")
	}
	return c.el.enqueue(task{kind: taskRun, c: c, fn: fn})
}

func (c *Conn) asyncWrite(p []byte, cb func(*Conn, error)) {
	c.backlog.Add(-int64(len(p)))
	if err := c.writable("write"); err != nil {
		if cb != nil {
			c.el.protect(c, func() { cb(c, err) })
		}
		return
	}
	if cb != nil {
		x := c.extra()
		if len(x.waits) == 0 {
			x.queued, x.written = uint64(c.pending()), 0
		}
		c.buffer(p)
		x.waits = append(x.waits, asyncWait{end: x.queued, cb: cb})
		if len(p) == 0 && c.pending() == 0 {
			c.completeWaits()
		}
		return
	}
	c.buffer(p)
}

func (c *Conn) completeWaits() {
	x := c.x
	for len(x.waits) > 0 && x.waits[0].end <= x.written {
		w := x.waits[0]
		x.waits[0] = asyncWait{}
		x.waits = x.waits[1:]
		c.el.protect(c, func() { w.cb(c, nil) })
	}
	if len(x.waits) == 0 {
		x.waits = nil
	}
}

// flush writes pending output until it is sent or the kernel is full. It
// reports false if the connection closed on an error.
func (c *Conn) flush() bool {
	if c.flags&fComp != 0 {
		return c.send()
	}
	for c.pending() > 0 {
		b := c.b
		var n int
		var err error
		if c.flags&fStream != 0 {
			var held bool
			n, held, err = c.stream().Write(b.out[b.outHead:])
			if held && err == nil {
				c.flags |= fArmedW
				err = unix.EAGAIN
			}
		} else {
			n, err = unix.Write(int(c.fd), b.out[b.outHead:])
		}
		if n > 0 {
			b.outHead += int32(n)
			if x := c.x; x != nil {
				if x.readTO|x.idleTO != 0 {
					x.lastOut = mono()
				}
				if len(x.waits) > 0 {
					x.written += uint64(n)
				}
			}
		}
		if err != nil {
			if err == unix.EAGAIN {
				break
			}
			if err == unix.EINTR {
				continue
			}
			if c.flags&fStream == 0 {
				err = os.NewSyscallError("write", err)
			}
			c.finishClose(err)
			return false
		}
	}
	if c.b != nil && c.b.out != nil && c.pending() == 0 {
		c.dropOut()
	}
	if c.x != nil && len(c.x.waits) > 0 {
		c.completeWaits()
	}
	return c.flags&fClosed == 0
}

// send gives the pending output to the loop's Completer in one Send,
// unless one is in flight: the bytes written meanwhile go in the next,
// when it completes. It reports false if the connection closed.
func (c *Conn) send() bool {
	b := c.b
	if b == nil || b.sending > 0 || c.pending() == 0 {
		return true
	}
	if err := c.el.comp.Send(int(c.fd), b.out[b.outHead:], c.el.sent(c)); err != nil {
		c.finishClose(err)
		return false
	}
	b.sending = int32(c.pending())
	return true
}

// onSent is the completion of a Send.
func (c *Conn) onSent(n int, err error) {
	el := c.el
	if c.flags&fClosed != 0 {
		// Closed while the send was in flight: the fd was kept for it.
		el.buryFD(c)
		return
	}
	b := c.b
	b.sending = 0
	if n > 0 {
		b.outHead += int32(n)
		if x := c.x; x != nil {
			if x.readTO|x.idleTO != 0 {
				x.lastOut = mono()
			}
			if len(x.waits) > 0 {
				x.written += uint64(n)
			}
		}
	}
	if err != nil {
		c.finishClose(err)
		el.flushDirty()
		return
	}
	if c.pending() == 0 {
		c.dropOut()
	}
	if c.x != nil && len(c.x.waits) > 0 {
		c.completeWaits()
	}
	c.markDirty()
	el.flushDirty()
}

// Received is the callback of the loop's Completer's receives
// (loop.Receiver): one for every connection of the loop, which it finds
// by fd.
func (el *eventLoop) Received(fd int, p []byte, err error) {
	if c := el.byFD.get(fd); c != nil {
		c.onRecv(p, err)
	}
}

func (c *Conn) onRecv(p []byte, err error) {
	if c.flags&fClosed != 0 {
		return
	}
	if c.flags&fArmedR == 0 {
		// Bytes received as the Recv was being stopped (a pause, a
		// hand-over): they are input all the same, shown on the next
		// OnData or handed over.
		c.stash(p)
		return
	}
	switch {
	case err == nil:
		c.deliver(p)
	case err == io.EOF:
		c.flags &^= fArmedR | fRecv // the Recv has ended
		c.peerEOF()
	default:
		c.flags &^= fArmedR | fRecv
		c.finishClose(err)
	}
	c.el.flushDirty()
}

// stopWatch stops the connection's watcher or receive, if it has one (a
// stream has none: it ends with its Close).
func (c *Conn) stopWatch() {
	if c.flags&fRecv != 0 {
		c.flags &^= fRecv
		_ = c.el.comp.StopRecv(int(c.fd))
		return
	}
	if c.flags&(fComp|fStream) != 0 {
		return
	}
	wp := c.watcher()
	if w, ok := (*wp).(loop.Watcher); ok {
		*wp = nil
		_ = w.Stop()
	}
}

// stash keeps p as input OnData has not seen.
func (c *Conn) stash(p []byte) {
	if len(p) == 0 {
		return
	}
	b := c.bufs()
	var head int
	b.in, head = appendBuf(b.in, int(b.inHead), p)
	b.inHead = int32(head)
	c.flags |= fUnseen
}

// armComp starts or stops the connection's Recv.
func (c *Conn) armComp(want uint32) {
	if (want^c.flags)&fArmedR == 0 {
		return
	}
	if want&fArmedR == 0 {
		// Cleared first: what the stopping Recv still gives is stashed.
		c.flags &^= fArmedR
		c.stopWatch()
		return
	}
	if err := c.el.comp.Recv(int(c.fd), c.el); err != nil {
		c.finishClose(err)
		return
	}
	c.flags |= fArmedR | fRecv
	if c.flags&fUnseen != 0 {
		c.deliver(nil)
	}
}

// settle sends what the callbacks wrote and brings the connection's state
// (closing, half-close, backpressure, armed events) up to date. It runs
// after every callback, for each connection that callback touched.
func (c *Conn) settle() {
	s := &c.el.s.opt
	if c.pending() > s.HighWater {
		c.flags |= fOverHW
	}
	if c.pending() > 0 && c.flags&fArmedW == 0 {
		if !c.flush() {
			return
		}
	}
	pend := c.pending()
	if pend == 0 {
		if c.flags&fClosing != 0 {
			c.finishClose(c.x.reason)
			return
		}
		if c.flags&(fShutWR|fShutDone) == fShutWR {
			c.flags |= fShutDone
			var err error
			if c.flags&fStream != 0 {
				err = c.stream().CloseWrite()
			} else {
				err = os.NewSyscallError("shutdown", unix.Shutdown(int(c.fd), unix.SHUT_WR))
			}
			if err != nil {
				c.finishClose(err)
				return
			}
		}
		if c.x != nil && c.x.handover != nil {
			c.handOverNow()
			return
		}
	}
	if pend > s.HighWater {
		c.flags |= fPausedBP
	} else if pend <= s.LowWater {
		c.flags &^= fPausedBP
	}
	if c.flags&fOverHW != 0 && pend <= s.LowWater {
		c.flags &^= fOverHW
		if dh, ok := c.el.s.h.(DrainHandler); ok {
			c.el.protect(c, func() { dh.OnDrain(c) })
			if c.flags&fClosed != 0 {
				return
			}
		}
	}
	if d := int32(pend) - c.published; d != 0 {
		c.published = int32(pend)
		c.backlog.Add(int64(d))
	}
	c.arm()
}

// arm registers the events the connection needs now.
func (c *Conn) arm() {
	var want uint32
	if c.flags&(fPausedBP|fPeerEOF|fClosing|fClosed) == 0 && (c.x == nil || c.x.handover == nil) {
		want |= fArmedR
	}
	if c.flags&fComp != 0 {
		c.armComp(want)
		return
	}
	if c.flags&fStream != 0 {
		if (want^c.flags)&fArmedR != 0 {
			c.stream().SetReadPaused(want == 0)
			c.flags ^= fArmedR
		}
		return
	}
	if c.pending() > 0 {
		want |= fArmedW
	}
	if (want^c.flags)&(fArmedR|fArmedW) == 0 {
		return
	}
	var ev loop.Events
	if want&fArmedR != 0 {
		ev |= loop.Readable
	}
	if want&fArmedW != 0 {
		ev |= loop.Writable
	}
	if err := (*c.watcher()).(loop.IOWatcher).Modify(ev); err != nil {
		c.finishClose(err)
		return
	}
	c.flags = c.flags&^(fArmedR|fArmedW) | want
}

// --- events ---

// onEvent is the connection's watcher callback.
func (c *Conn) onEvent(ev loop.Events) {
	el := c.el
	if ev&loop.Writable != 0 {
		// fArmedW stays: it is what the kernel has armed, and settle
		// changes the registration only if the output drained.
		if !c.flush() {
			el.flushDirty()
			return
		}
		c.markDirty()
	}
	if ev&loop.Readable != 0 && c.flags&fArmedR != 0 {
		n, err := unix.Read(int(c.fd), el.buf)
		switch {
		case n > 0:
			c.deliver(el.buf[:n])
		case err == nil:
			c.peerEOF()
		case err == unix.EAGAIN || err == unix.EINTR:
		default:
			c.finishClose(os.NewSyscallError("read", err))
		}
	}
	el.flushDirty()
}

// deliver runs OnData with p appended to the connection's input. p is
// only borrowed.
func (c *Conn) deliver(p []byte) {
	el := c.el
	c.flags &^= fUnseen
	view, fromIn := p, false
	if b := c.b; b != nil && len(b.in) > int(b.inHead) {
		var head int
		b.in, head = appendBuf(b.in, int(b.inHead), p)
		b.inHead = int32(head)
		view, fromIn = b.in[b.inHead:], true
	}
	if x := c.x; x != nil && x.readTO|x.idleTO != 0 {
		x.lastIn = mono()
	}
	el.cur, el.view = c, view
	el.callData(c)
	rest := el.view
	el.cur, el.view = nil, nil
	if c.flags&fClosed != 0 {
		if c.b != nil && c.b.in != nil {
			c.dropIn()
		}
		return
	}
	switch {
	case fromIn && len(rest) == 0:
		c.dropIn()
	case fromIn:
		c.b.inHead = int32(len(c.b.in) - len(rest))
	case len(rest) > 0:
		b := c.bufs()
		b.in = append(el.getBuf(len(rest)), rest...)
		b.inHead = 0
	}
	c.markDirty()
}

func (c *Conn) peerEOF() {
	c.flags |= fPeerEOF
	c.markDirty()
	if eh, ok := c.el.s.h.(EOFHandler); ok {
		c.el.protect(c, func() { eh.OnEOF(c) })
		return
	}
	c.closeGraceful(io.EOF)
}

// --- closing ---

// Close closes the connection once its pending output is sent; OnClose
// follows with a nil reason. Reading stops at once. Close on a closed
// connection returns net.ErrClosed (in a *net.OpError).
func (c *Conn) Close() error {
	if c.flags&(fClosed|fClosing) != 0 {
		return c.closedErr("close")
	}
	c.closeGraceful(nil)
	return nil
}

func (c *Conn) closeGraceful(reason error) {
	if c.flags&(fClosed|fClosing) != 0 {
		return
	}
	c.extra().reason = reason
	c.flags |= fClosing
	c.markDirty()
}

// CloseWrite sends EOF to the peer after the pending output
// (shutdown(SHUT_WR)); the connection stays readable. Write fails after
// it.
func (c *Conn) CloseWrite() error {
	if err := c.writable("close"); err != nil {
		return err
	}
	c.flags |= fShutWR
	c.markDirty()
	return nil
}

// finishClose releases the connection at once and calls OnClose.
func (c *Conn) finishClose(reason error) {
	if c.flags&fClosed != 0 {
		return
	}
	el := c.el
	c.flags |= fClosed
	c.stopWatch() // before the fd is closed: its number may be reused
	sending := c.b != nil && c.b.sending > 0
	if sending {
		// The kernel still reads these bytes: the buffer goes to the
		// garbage collector, not to the pool.
		c.b.out, c.b.outHead, c.b.sending = nil, 0, 0
		if c.b.in == nil {
			c.b = nil
		}
	}
	el.unlink(c)
	if x := c.x; x != nil {
		if x.timer != nil {
			x.timer.Stop()
		}
		waits := x.waits
		x.waits = nil
		for _, w := range waits {
			err := reason
			if err == nil || err == io.EOF {
				err = c.closedErr("write")
			}
			el.protect(nil, func() { w.cb(c, err) })
		}
		if x.handover != nil {
			ho := x.handover
			x.handover = nil
			ho.fail(c, reason)
		}
	}
	if c.b != nil && c.b.out != nil {
		c.dropOut()
	}
	if c.b != nil && c.b.in != nil && el.cur != c {
		c.dropIn()
	}
	c.backlog.Add(-int64(c.published))
	c.published = 0
	if c.flags&fOpen != 0 {
		el.protect(nil, func() { el.s.h.OnClose(c, reason) })
	}
	switch {
	case c.flags&fStream != 0:
		_ = c.stream().Close()
	case c.flags&fGiven != 0:
		c.fd = -1
	case sending && c.fd >= 0:
		// A Send in flight names the fd: closing it now could let a new
		// socket take its number before the send is submitted. Shut the
		// socket down (the send fails at once if it blocks) and close it
		// when the send completes.
		_ = unix.Shutdown(int(c.fd), unix.SHUT_RDWR)
		el.keepFD(c, int(c.fd))
		c.fd = -1
	case c.fd >= 0:
		_ = unix.Close(int(c.fd))
		c.fd = -1
	}
}

// --- the rest of the API ---

// Context returns the value set by SetContext.
func (c *Conn) Context() any { return c.ctx }

// SetContext stores a value with the connection (per-connection state of
// the handler).
func (c *Conn) SetContext(v any) { c.ctx = v }

// Fd is the connection's socket, or -1 once closed or for a connection of
// a loop that owns its sockets (StreamServer).
func (c *Conn) Fd() int {
	if c.flags&fStream != 0 {
		return -1
	}
	return int(c.fd)
}

// LocalAddr is the connection's local address (*net.TCPAddr or
// *net.UnixAddr), nil once closed. It is looked up on each call (the
// connection does not spend memory on it).
func (c *Conn) LocalAddr() net.Addr {
	if c.flags&fStream != 0 {
		return c.stream().LocalAddr()
	}
	if c.fd < 0 {
		return nil
	}
	sa, err := unix.Getsockname(int(c.fd))
	if err != nil {
		return nil
	}
	return sockAddr(sa)
}

// RemoteAddr is the peer's address, as LocalAddr.
func (c *Conn) RemoteAddr() net.Addr {
	if c.flags&fStream != 0 {
		return c.stream().RemoteAddr()
	}
	if c.fd < 0 {
		return nil
	}
	sa, err := unix.Getpeername(int(c.fd))
	if err != nil {
		return nil
	}
	a := sockAddr(sa)
	if ua, ok := a.(*net.UnixAddr); ok && ua.Name == "" {
		return nil
	}
	return a
}

// SetReadTimeout closes the connection (reason wrapping
// os.ErrDeadlineExceeded) when no input arrives for d; 0 turns it off.
// The clock starts now. The check runs on a loop timer.
func (c *Conn) SetReadTimeout(d time.Duration) { c.setTimeouts(d, -1) }

// SetIdleTimeout closes the connection (reason wrapping
// os.ErrDeadlineExceeded) when nothing is read or written for d; 0 turns
// it off.
func (c *Conn) SetIdleTimeout(d time.Duration) { c.setTimeouts(-1, d) }

func (c *Conn) setTimeouts(read, idle time.Duration) {
	if c.flags&fClosed != 0 {
		return
	}
	x := c.extra()
	if read >= 0 {
		x.readTO = read
	}
	if idle >= 0 {
		x.idleTO = idle
	}
	now := mono()
	x.lastIn, x.lastOut = now, now
	c.rearmTimer(now)
}

func (c *Conn) rearmTimer(now int64) {
	x := c.x
	next := int64(-1)
	if x.readTO > 0 {
		next = x.lastIn + int64(x.readTO)
	}
	if x.idleTO > 0 {
		dl := max(x.lastIn, x.lastOut) + int64(x.idleTO)
		if next < 0 || dl < next {
			next = dl
		}
	}
	if next < 0 {
		if x.timer != nil {
			x.timer.Stop()
		}
		return
	}
	d := time.Duration(next - now)
	if x.timer == nil {
		x.timer = c.el.l.Timer(d, 0, c.onTimer)
		return
	}
	x.timer.Reset(d, 0)
}

func (c *Conn) onTimer() {
	if c.flags&fClosed != 0 {
		return
	}
	x, now := c.x, mono()
	switch {
	case x.readTO > 0 && now >= x.lastIn+int64(x.readTO):
		c.finishClose(fmt.Errorf("reactor: no input for %v: %w", x.readTO, os.ErrDeadlineExceeded))
	case x.idleTO > 0 && now >= max(x.lastIn, x.lastOut)+int64(x.idleTO):
		c.finishClose(fmt.Errorf("reactor: idle for %v: %w", x.idleTO, os.ErrDeadlineExceeded))
	default:
		c.rearmTimer(now)
	}
	c.el.flushDirty()
}
