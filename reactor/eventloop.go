package reactor

import (
	"runtime/debug"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// eventLoop is one loop.Loop of a server and what belongs to it: the read
// buffer every connection of the loop shares, the list of its
// connections, and its inbox of work from other goroutines.
type eventLoop struct {
	s    *Server
	id   int
	l    loop.Loop
	comp loop.Completer // the loop's completion I/O, if it has it and the server uses it

	// Loop goroutine only.
	buf   []byte   // the shared read buffer
	cur   *Conn    // the connection in OnData
	view  []byte   // its unread input during OnData
	dirty []*Conn  // connections written to or closed since the last settle
	conns connList // open connections, but those in byFD
	byFD  fdConns  // open connections of the Completer, whose callbacks name the fd
	cache [4][][]byte
	bufs  []*connBufs // spare connBufs

	senders []*sender     // spare Send callbacks
	kept    map[*Conn]int // fds of closed connections that a Send in flight still names

	nconn atomic.Int64 // connections assigned to the loop (balancing)

	mu     sync.Mutex
	inbox  []task
	spare  []task
	posted bool
	closed bool
	drain  func()

	done   chan struct{}
	runErr error
}

type taskKind uint8

const (
	taskOpen taskKind = iota
	taskWrite
	taskRun
	taskCall
)

// task is work handed to a loop from another goroutine.
type task struct {
	kind taskKind
	c    *Conn
	p    []byte
	cb   func(*Conn, error)
	fn   func(*Conn)
	call func()
}

func newEventLoop(s *Server, id int, l loop.Loop) *eventLoop {
	el := &eventLoop{s: s, id: id, l: l, buf: make([]byte, s.opt.ReadBufferSize), done: make(chan struct{})}
	el.drain = el.drainInbox
	if cp, ok := l.(loop.Completer); ok && !s.opt.NoCompletion {
		el.comp = cp
	}
	return el
}

// sender is the callback of one Send in flight; the loop keeps the spare
// ones, so that a message allocates nothing.
type sender struct {
	c  *Conn
	fn func(n int, err error) // s.done, made once
}

func (el *eventLoop) sent(c *Conn) func(int, error) {
	var s *sender
	if n := len(el.senders); n > 0 {
		s = el.senders[n-1]
		el.senders[n-1] = nil
		el.senders = el.senders[:n-1]
	} else {
		s = &sender{}
		s.fn = s.done
	}
	s.c = c
	return s.fn
}

func (s *sender) done(n int, err error) {
	c := s.c
	s.c = nil
	if el := c.el; len(el.senders) < 1024 {
		el.senders = append(el.senders, s)
	}
	c.onSent(n, err)
}

// keepFD holds fd, of a connection closed with a Send in flight, until
// the send completes (buryFD) or the loop is closed (closeKept).
func (el *eventLoop) keepFD(c *Conn, fd int) {
	if el.kept == nil {
		el.kept = map[*Conn]int{}
	}
	el.kept[c] = fd
}

func (el *eventLoop) buryFD(c *Conn) {
	if fd, ok := el.kept[c]; ok {
		delete(el.kept, c)
		_ = unix.Close(fd)
	}
}

// closeKept closes the kept fds once the loop is closed (its requests
// with it).
func (el *eventLoop) closeKept() {
	for _, fd := range el.kept {
		_ = unix.Close(fd)
	}
	el.kept = nil
}

// enqueue hands t to the loop: one Post wakes the loop for everything
// queued until it drains, so a burst of async writes costs one wake-up.
func (el *eventLoop) enqueue(t task) error {
	el.mu.Lock()
	if el.closed {
		el.mu.Unlock()
		return ErrServerClosed
	}
	el.inbox = append(el.inbox, t)
	post := !el.posted
	el.posted = true
	el.mu.Unlock()
	if post {
		if err := el.l.Post(el.drain); err != nil {
			return ErrServerClosed
		}
	}
	return nil
}

// call runs fn on the loop goroutine and waits for it. Not for use on a
// loop goroutine.
func (el *eventLoop) call(fn func()) error {
	done := make(chan struct{})
	if err := el.enqueue(task{kind: taskCall, call: func() { fn(); close(done) }}); err != nil {
		return err
	}
	<-done
	return nil
}

func (el *eventLoop) drainInbox() {
	el.mu.Lock()
	q := el.inbox
	el.inbox, el.posted = el.spare[:0], false
	el.mu.Unlock()
	for i := range q {
		t := &q[i]
		switch t.kind {
		case taskOpen:
			el.open(t.c)
		case taskWrite:
			t.c.asyncWrite(t.p, t.cb)
		case taskRun:
			if t.c.flags&fClosed == 0 {
				c, fn := t.c, t.fn
				el.protect(c, func() { fn(c) })
			}
		case taskCall:
			t.call()
		}
		*t = task{}
		el.flushDirty()
	}
	el.mu.Lock()
	el.spare = q[:0]
	el.mu.Unlock()
}

// open registers a connection whose fd (or stream) is set and runs
// OnOpen.
func (el *eventLoop) open(c *Conn) {
	if c.flags&fStream == 0 {
		var w loop.Watcher
		var err error
		if c.flags&fComp != 0 {
			if err = el.comp.Recv(int(c.fd), el); err == nil {
				c.flags |= fRecv
			}
		} else {
			w, err = el.l.Watch(int(c.fd), loop.Readable, c.onEvent)
			quiet(w)
		}
		if err != nil {
			el.nconn.Add(-1)
			el.s.live.Add(-1)
			_ = unix.Close(int(c.fd))
			c.fd = -1
			c.flags |= fClosed
			return
		}
		if w != nil {
			*c.watcher() = w
		}
	} else {
		c.stream().SetReadPaused(false)
	}
	c.flags |= fOpen | fArmedR
	if c.flags&fComp != 0 {
		el.byFD.add(c)
	} else {
		el.conns.add(c)
	}
	if o := &el.s.opt; o.ReadTimeout > 0 || o.IdleTimeout > 0 {
		x := c.extra()
		x.readTO, x.idleTO = o.ReadTimeout, o.IdleTimeout
		now := mono()
		x.lastIn, x.lastOut = now, now
		c.rearmTimer(now)
	}
	el.protect(c, func() { el.s.h.OnOpen(c) })
	c.markDirty()
	el.flushDirty()
}

func (el *eventLoop) unlink(c *Conn) {
	if c.flags&fOpen == 0 {
		return
	}
	if c.flags&fComp != 0 {
		el.byFD.remove(c)
	} else {
		el.conns.remove(c)
	}
	c.idx = -1
	el.nconn.Add(-1)
	el.s.live.Add(-1)
}

// flushDirty settles every connection a callback touched.
func (el *eventLoop) flushDirty() {
	for i := 0; i < len(el.dirty); i++ {
		c := el.dirty[i]
		el.dirty[i] = nil
		c.flags &^= fDirty
		if c.flags&fClosed == 0 {
			c.settle()
		}
	}
	el.dirty = el.dirty[:0]
}

// callData runs OnData; a panic closes the connection with the panic as
// the reason.
func (el *eventLoop) callData(c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			el.cur, el.view = nil, nil
			c.finishClose(&PanicError{Value: r, Stack: debug.Stack()})
		}
	}()
	el.s.h.OnData(c)
}

// protect runs fn, a callback of c (nil: of no connection); a panic closes
// c with the panic as the reason.
func (el *eventLoop) protect(c *Conn, fn func()) {
	defer func() {
		if r := recover(); r != nil && c != nil {
			c.finishClose(&PanicError{Value: r, Stack: debug.Stack()})
		}
	}()
	fn()
}

// getBuf and putBuf keep a few small buffers per loop before the shared
// pools, so a ping-pong connection reuses one without synchronisation.
func (el *eventLoop) getBuf(n int) []byte {
	if k := class(n); k < len(el.cache) {
		if l := len(el.cache[k]); l > 0 {
			b := el.cache[k][l-1]
			el.cache[k] = el.cache[k][:l-1]
			return b[:0]
		}
	}
	return getBuf(n)
}

func (el *eventLoop) putBuf(b []byte) {
	c := cap(b)
	if k := class(c); c == minBuf<<k && k < len(el.cache) && len(el.cache[k]) < 16 {
		el.cache[k] = append(el.cache[k], b[:0])
		return
	}
	putBuf(b)
}

// getBufs and putBufs keep up to 64 spare connBufs per loop, so a
// connection that buffers for a moment (a reply, a partial frame) reuses
// one without allocating.
func (el *eventLoop) getBufs() *connBufs {
	if n := len(el.bufs); n > 0 {
		b := el.bufs[n-1]
		el.bufs[n-1] = nil
		el.bufs = el.bufs[:n-1]
		return b
	}
	return &connBufs{}
}

func (el *eventLoop) putBufs(b *connBufs) {
	if len(el.bufs) < 64 {
		el.bufs = append(el.bufs, b)
	}
}

// shutdown closes every connection with reason and fails what is queued;
// on the loop goroutine, once the inbox is closed.
func (el *eventLoop) shutdown(reason error) {
	el.mu.Lock()
	q := el.inbox
	el.inbox = nil
	el.mu.Unlock()
	for i := range q {
		t := &q[i]
		switch t.kind {
		case taskOpen:
			if t.c.flags&fStream == 0 {
				_ = unix.Close(int(t.c.fd))
			}
			el.nconn.Add(-1)
			el.s.live.Add(-1)
		case taskWrite:
			if t.cb != nil {
				c, cb := t.c, t.cb
				el.protect(nil, func() { cb(c, reason) })
			}
		case taskCall:
			t.call()
		}
	}
	for el.conns.len() > 0 {
		el.conns.at(el.conns.len() - 1).finishClose(reason)
	}
	el.byFD.each(func(c *Conn) { c.finishClose(reason) })
	el.flushDirty()
	for k := range el.cache {
		el.cache[k] = nil
	}
}

// quiet tells a loop that yields after each fd's callbacks
// (loop.Quieter) that the reactor's need no yield: handlers run on the
// loop goroutine, and a goroutine one readies (a channel send) runs when
// the loop next yields, before it blocks, as in gnet itself.
func quiet(w loop.Watcher) {
	if q, ok := w.(loop.Quieter); ok {
		q.Quiet()
	}
}
