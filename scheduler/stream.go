package scheduler

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Hub sockets on a loop that owns its sockets (loop.StreamServer, e.g.
// evio): the library accepts, reads and writes; this file turns its
// callbacks into the same net.Listener and net.Conn as the fd-based
// sockets, with the same wait primitive (waitSide), deadlines and error
// values.
//
// Reading: bytes the loop delivers are queued on the conn, without a
// copy. A conn starts with reading paused, so bytes nobody asked for stay
// in the kernel as on a net.Conn nobody reads (a Close then resets the
// connection, exactly as net's); the first Read resumes reading, and
// reading pauses again whenever streamHighWater bytes are queued unread —
// the bound on what a slow reader costs.
//
// Writing: Stream.Write takes what the socket (plus at most one bounded
// chunk of the library's) can take without blocking; a Write that is given
// less than it asked for waits for the loop's Writable, or its deadline,
// or Close.

const (
	// streamHighWater is how many unread bytes a conn queues before it
	// pauses reading; it resumes below streamLowWater.
	streamHighWater = 256 << 10
	streamLowWater  = streamHighWater / 2
	// rawPollSlice bounds one poll(2) of a raw Read or Write on a stream
	// conn, so Close and deadlines are noticed within it.
	rawPollSlice = 5 * time.Millisecond
	// streamBacklog is how many connections a listener queues unaccepted
	// before it stops accepting (the rest wait in the kernel's backlog).
	streamBacklog = 128
)

// listenStream is Listen on a loop that serves stream listeners itself.
func (h *Hub) listenStream(ss loop.StreamServer, network, address string) (net.Listener, error) {
	opErr := func(addr net.Addr, err error) error {
		return &net.OpError{Op: "listen", Net: network, Source: nil, Addr: addr, Err: err}
	}
	kind, _ := classify(network)
	// Resolve first, as the fd-based Listen does, so bad addresses fail
	// with the same errors on every backend.
	if kind == kindTCP {
		if _, err := net.ResolveTCPAddr(network, address); err != nil {
			return nil, opErr(nil, err)
		}
	} else if _, err := net.ResolveUnixAddr(network, address); err != nil {
		return nil, opErr(nil, err)
	}
	l := &streamListener{h: h, network: network, kind: kind}
	l.side.wake = make(chan struct{}, 1)
	sl, err := ss.ServeStream(network, address, l)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return nil, err
		}
		return nil, opErr(nil, err)
	}
	l.ln = sl
	l.laddr = sl.Addr()
	if ua, ok := l.laddr.(*net.UnixAddr); ok {
		l.laddr = &net.UnixAddr{Name: ua.Name, Net: network}
	}
	if h.closed.Load() {
		_ = sl.Close()
		return nil, opErr(l.laddr, ErrHubClosed)
	}
	return l, nil
}

// streamWait parks the caller on s until the loop makes s ready, its
// deadline passes, or closing is set (waitSide.wait without an fd: the
// loop reports readiness unasked). A nil return means "look again".
func streamWait(s *waitSide, closing *atomic.Bool) error { return s.wait(closing, nil, 0) }

// streamListener is a net.Listener on a loop.StreamServer; it is the
// loop.StreamHandler of its connections too.
type streamListener struct {
	h       *Hub
	ln      loop.StreamListener
	network string
	kind    netKind
	laddr   net.Addr

	amu     sync.Mutex // serialises Accept, like the fd's read lock
	side    waitSide   // Accept's wait (and deadline)
	closing atomic.Bool

	mu        sync.Mutex
	queue     []*streamConn // opened, not yet accepted
	failed    error
	accepting bool // the loop is asked to accept

	// Loop goroutine only.
	conns loop.StreamValues[*streamConn]
}

var _ loop.StreamHandler = (*streamListener)(nil)

func (l *streamListener) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: l.network, Source: nil, Addr: l.laddr, Err: err}
}

// Accept waits for and returns the next connection.
func (l *streamListener) Accept() (net.Conn, error) {
	l.amu.Lock()
	defer l.amu.Unlock()
	for {
		if l.closing.Load() {
			return nil, l.opErr("accept", errClosing)
		}
		if l.side.dl.Load() < 0 {
			return nil, l.opErr("accept", os.ErrDeadlineExceeded)
		}
		l.mu.Lock()
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return c.wrap(), nil
		}
		failed := l.failed
		resume := !l.accepting && failed == nil
		l.accepting = true
		l.mu.Unlock()
		if failed != nil {
			return nil, l.opErr("accept", failed)
		}
		if resume {
			// Listeners start paused: connections wait in the kernel's
			// backlog until somebody accepts, as with net.
			l.ln.SetAcceptPaused(false)
		}
		if err := streamWait(&l.side, &l.closing); err != nil {
			return nil, l.opErr("accept", err)
		}
	}
}

// Close stops listening; a blocked Accept returns net.ErrClosed and
// connections already accepted stay open, as with net. Connections the
// loop opened that nobody accepted yet are closed.
func (l *streamListener) Close() error {
	if !l.closing.CompareAndSwap(false, true) {
		return l.opErr("close", errClosing)
	}
	l.side.stopTimer()
	l.side.signal()
	err := l.ln.Close()
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, c := range q {
		_ = c.Close()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return l.opErr("close", err)
	}
	return nil
}

// Addr returns the listening address.
func (l *streamListener) Addr() net.Addr { return l.laddr }

// SetDeadline sets the deadline for Accept.
func (l *streamListener) SetDeadline(t time.Time) error {
	if l.closing.Load() {
		return errClosing // net's listeners return it bare
	}
	l.side.setDeadline(t)
	return nil
}

// SyscallConn returns a raw connection for the listening socket (Control
// only: the library does the accepting).
func (l *streamListener) SyscallConn() (syscall.RawConn, error) {
	return &streamListenerRaw{l}, nil
}

type streamListenerRaw struct{ l *streamListener }

func (r *streamListenerRaw) Control(f func(fd uintptr)) error {
	l := r.l
	if l.closing.Load() {
		return l.opErr("raw-control", errClosing)
	}
	if err := l.ln.Control(f); err != nil {
		return l.opErr("raw-control", err)
	}
	return nil
}

func (r *streamListenerRaw) Read(func(fd uintptr) bool) error {
	return r.l.opErr("raw-read", &loop.UnsupportedError{Backend: r.l.h.Backend(), Capability: "raw-listener",
		Reason: "the loop accepts connections itself"})
}

func (r *streamListenerRaw) Write(func(fd uintptr) bool) error {
	return r.l.opErr("raw-write", &loop.UnsupportedError{Backend: r.l.h.Backend(), Capability: "raw-listener",
		Reason: "the loop accepts connections itself"})
}

// The loop.StreamHandler methods, on the loop goroutine.

// Opened queues a new connection for Accept.
func (l *streamListener) Opened(s loop.Stream) {
	c := newStreamConn(l, s)
	l.conns.Set(s, c)
	l.mu.Lock()
	if l.closing.Load() {
		l.mu.Unlock()
		c.closing.Store(true)
		_ = c.s.Close() // nothing read yet: on the loop goroutine, no wait for it
		return
	}
	l.queue = append(l.queue, c)
	pause := len(l.queue) >= streamBacklog && l.accepting
	if pause {
		l.accepting = false
	}
	l.mu.Unlock()
	if pause {
		l.ln.SetAcceptPaused(true)
	}
	l.side.ready()
}

// conn is the conn of s, nil if it has none.
func (l *streamListener) conn(s loop.Stream) *streamConn {
	c, _ := l.conns.Get(s)
	return c
}

// Data queues bytes for the conn's readers.
func (l *streamListener) Data(s loop.Stream, p []byte) {
	if c := l.conn(s); c != nil {
		c.data(p)
	}
}

// Writable wakes the conn's writer.
func (l *streamListener) Writable(s loop.Stream) {
	if c := l.conn(s); c != nil {
		c.side[modeWrite].ready()
	}
}

// Closed ends the conn: readers see EOF (or the error) after the queued
// bytes; a hub that is closing makes it net.ErrClosed.
func (l *streamListener) Closed(s loop.Stream, err error) {
	c := l.conn(s)
	if c == nil {
		return
	}
	l.conns.Delete(s)
	c.gone(err)
}

// ListenerFailed makes Accept return err (net.ErrClosed when the hub is
// closing).
func (l *streamListener) ListenerFailed(err error) {
	if l.h.closed.Load() {
		l.closing.Store(true)
	} else {
		l.mu.Lock()
		l.failed = err
		l.mu.Unlock()
	}
	l.side.signal()
	l.side.ready()
}

// streamConn is a connection of a stream listener.
type streamConn struct {
	h            *Hub
	s            loop.Stream
	dr           loop.DirectReadStream // s, if the loop can hand reading back
	net          string
	kind         netKind
	laddr, raddr net.Addr

	side     [2]waitSide
	closing  atomic.Bool
	rmu, wmu sync.Mutex // serialise readers and writers, as net does

	mu     sync.Mutex
	chunks [][]byte // unread bytes, in order
	unread int
	paused bool // reading paused (the stream's state as last set)
	eof    bool
	rerr   error
	ended  bool // the loop's Closed arrived
	rdShut bool
	// dropped: CloseRead dropped bytes nobody read (or some came after
	// it); net's kernel would still hold them, and Close resets.
	dropped bool
	// direct: the loop reads the socket no more (an empty Data on a
	// loop.DirectReadStream); after the queued bytes, reads ask the
	// kernel (readDirect).
	direct bool
	// directErr is an error the kernel reported to a read that returned
	// bytes: the next read's.
	directErr error
}

func newStreamConn(l *streamListener, s loop.Stream) *streamConn {
	c := &streamConn{h: l.h, s: s, net: l.network, kind: l.kind, paused: true}
	c.side[0].wake = make(chan struct{}, 1)
	c.side[1].wake = make(chan struct{}, 1)
	c.dr, _ = s.(loop.DirectReadStream)
	c.laddr, c.raddr = s.LocalAddr(), s.RemoteAddr()
	_ = s.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			if a := sockaddrToAddr(c.kind, unix.SOCK_STREAM, sa); a != nil {
				c.laddr = a
			}
		}
		if sa, err := unix.Getpeername(int(fd)); err == nil {
			if a := sockaddrToAddr(c.kind, unix.SOCK_STREAM, sa); a != nil {
				c.raddr = a
			}
		}
		if c.kind == kindTCP {
			setTCPDefaults(int(fd))
		}
	})
	if ua, ok := c.laddr.(*net.UnixAddr); ok && ua != nil {
		c.laddr = &net.UnixAddr{Name: ua.Name, Net: l.network}
	}
	if ua, ok := c.raddr.(*net.UnixAddr); ok && ua != nil {
		c.raddr = &net.UnixAddr{Name: ua.Name, Net: l.network}
	}
	return c
}

// wrap returns the conn with the methods net's concrete type has.
func (c *streamConn) wrap() net.Conn {
	if c.kind == kindTCP {
		return &TCPConn{c}
	}
	return &UnixConn{c}
}

func (c *streamConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.net, Source: c.laddr, Addr: c.raddr, Err: err}
}

// data queues p for readers (an empty p is the peer's EOF); on the loop
// goroutine.
func (c *streamConn) data(p []byte) {
	c.mu.Lock()
	if len(p) == 0 {
		if c.dr != nil {
			c.direct = true
		} else {
			c.eof = true
		}
		c.mu.Unlock()
		c.side[modeRead].ready()
		return
	}
	if c.closing.Load() {
		// Bytes nobody will read: Close resets the connection for them,
		// as for those it dropped itself.
		c.mu.Unlock()
		c.resetOnClose()
		return
	}
	if c.rdShut {
		c.dropped = true
		c.mu.Unlock()
		return
	}
	c.chunks = append(c.chunks, p)
	c.unread += len(p)
	pause := c.unread >= streamHighWater && !c.paused
	if pause {
		c.paused = true
	}
	c.mu.Unlock()
	if pause {
		c.s.SetReadPaused(true)
	}
	c.side[modeRead].ready()
}

// gone records the loop's Closed; on the loop goroutine.
func (c *streamConn) gone(err error) {
	c.mu.Lock()
	c.ended = true
	if err == nil {
		c.eof = true
	} else if !c.eof {
		c.rerr = err
	}
	c.mu.Unlock()
	if c.h.closed.Load() {
		c.closing.Store(true) // the hub closed it
	}
	c.side[modeRead].ready()
	c.side[modeWrite].ready()
}

// Read implements net.Conn.
func (c *streamConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closing.Load() {
		return 0, c.opErr("read", errClosing)
	}
	if len(b) == 0 {
		// A zero-byte read returns at once, as in net.
		return 0, nil
	}
	if c.side[modeRead].dl.Load() < 0 {
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	for {
		c.mu.Lock()
		if c.unread > 0 {
			n := 0
			for n < len(b) && len(c.chunks) > 0 {
				m := copy(b[n:], c.chunks[0])
				n += m
				if m == len(c.chunks[0]) {
					c.chunks[0] = nil
					c.chunks = c.chunks[1:]
				} else {
					c.chunks[0] = c.chunks[0][m:]
				}
			}
			c.unread -= n
			if len(c.chunks) == 0 {
				c.chunks = nil
			}
			resume := c.paused && c.unread < streamLowWater && !c.ended && !c.rdShut
			if resume {
				c.paused = false
			}
			topUp := c.direct && c.unread == 0 && n < len(b) && c.directErr == nil
			c.mu.Unlock()
			if resume {
				c.s.SetReadPaused(false)
			}
			if topUp && c.kernelHolds() {
				// As net's read takes all the kernel has: the bytes the
				// loop read, then those the kernel holds (only when it
				// holds some: a read of none would take a pending error
				// that net's kernel keeps for the next call). An error
				// the kernel reports meanwhile is the next read's.
				m, err := c.dr.ReadDirect(b[n:])
				n += m
				if err != nil && err != io.EOF && err != syscall.EAGAIN && !errors.Is(err, net.ErrClosed) {
					c.mu.Lock()
					c.directErr = err
					c.mu.Unlock()
				}
			}
			return n, nil
		}
		if c.direct {
			err := c.directErr
			c.directErr = nil
			c.mu.Unlock()
			if err != nil {
				return 0, c.opErr("read", err)
			}
			return c.readDirect(b)
		}
		switch {
		case c.rdShut, c.eof:
			c.mu.Unlock()
			return 0, io.EOF
		case c.rerr != nil:
			// The kernel reports a reset once; reads after it see EOF.
			err := c.rerr
			c.rerr, c.eof = nil, true
			c.mu.Unlock()
			if errno, ok := err.(syscall.Errno); ok {
				err = os.NewSyscallError("read", errno)
			}
			return 0, c.opErr("read", err)
		}
		resume := c.paused
		c.paused = false
		c.mu.Unlock()
		if resume {
			c.s.SetReadPaused(false)
		}
		if err := streamWait(&c.side[modeRead], &c.closing); err != nil {
			return 0, c.opErr("read", err)
		}
	}
}

// kernelHolds reports whether the socket has bytes to read.
func (c *streamConn) kernelHolds() bool {
	holds := false
	_ = c.s.Control(func(fd uintptr) { holds = bytesQueued(int(fd)) })
	return holds
}

// readDirect reads the socket the loop no longer reads: the kernel's
// answer, as net's Read gets it (bytes that came after CloseRead, the
// EOF, a pending reset). It waits with poll(2) if nothing is there yet.
func (c *streamConn) readDirect(b []byte) (int, error) {
	var (
		n   int
		err error
	)
	werr := (&streamRaw{c}).wait("read", modeRead, unix.POLLIN, func(uintptr) bool {
		n, err = c.dr.ReadDirect(b)
		return err != syscall.EAGAIN
	})
	switch {
	case werr != nil:
		return 0, werr
	case err == io.EOF:
		return 0, io.EOF
	case errors.Is(err, net.ErrClosed):
		return 0, c.opErr("read", errClosing)
	case err != nil:
		return 0, c.opErr("read", err)
	}
	return n, nil
}

// Write implements net.Conn: it returns once every byte is taken, or with
// the deadline's or Close's error.
func (c *streamConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return 0, c.opErr("write", errClosing)
	}
	if c.side[modeWrite].dl.Load() < 0 {
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	if len(b) == 0 {
		return 0, c.writeZero()
	}
	nn := 0
	for {
		n, _, err := c.s.Write(b[nn:])
		nn += n
		if err != nil {
			if c.closing.Load() {
				err = errClosing
			}
			return nn, c.opErr("write", err)
		}
		if nn == len(b) {
			return nn, nil
		}
		if err := streamWait(&c.side[modeWrite], &c.closing); err != nil {
			return nn, c.opErr("write", err)
		}
	}
}

// writeZero is a Write of no bytes. net's makes the write(2) call all the
// same, and the kernel answers it: a pending socket error (the peer's
// reset, which it then no longer reports), or EPIPE once the writing side
// is shut down or the connection closed. The stream makes that call for
// an empty p that is not nil (loop.Stream.Write).
func (c *streamConn) writeZero() error {
	if _, _, err := c.s.Write(noBytes); err != nil {
		if c.closing.Load() {
			err = errClosing
		}
		return c.opErr("write", err)
	}
	return nil
}

// noBytes is an empty slice that is not nil.
var noBytes = make([]byte, 0)

// Close implements net.Conn: every blocked call returns net.ErrClosed.
func (c *streamConn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return c.opErr("close", errClosing)
	}
	for i := range c.side {
		c.side[i].stopTimer()
		c.side[i].signal()
	}
	// Bytes the loop handed over before now are queued once a call on its
	// goroutine returns: whether any are unread is then known here, and
	// the loop knows the rest (bytes it has not handed over yet).
	_ = c.h.call(func() {})
	c.mu.Lock()
	unread := c.unread > 0 || c.dropped
	c.chunks, c.unread = nil, 0
	c.mu.Unlock()
	if unread {
		c.resetOnClose()
	}
	_ = c.s.Close()
	return nil
}

// resetOnClose makes the close of a TCP conn with unread bytes a reset,
// as net's is (the kernel resets for bytes it holds; these were read out
// of it ahead of the application). A unix socket has no such option: its
// peer sees EOF, and a loop that reads ahead declares that.
func (c *streamConn) resetOnClose() {
	if c.kind != kindTCP {
		return
	}
	_ = c.s.Control(func(fd uintptr) {
		_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	})
}

// LocalAddr implements net.Conn.
func (c *streamConn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr implements net.Conn.
func (c *streamConn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline implements net.Conn.
func (c *streamConn) SetDeadline(t time.Time) error { return c.setDeadline(t, true, true) }

// SetReadDeadline implements net.Conn.
func (c *streamConn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline implements net.Conn.
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

// setErr is net's error for the setters of every conn, which name only
// the local address (the TCP setters name both).
func (c *streamConn) setErr(err error) error {
	return &net.OpError{Op: "set", Net: c.net, Source: nil, Addr: c.laddr, Err: err}
}

func (c *streamConn) setDeadline(t time.Time, r, w bool) error {
	if c.closing.Load() {
		return c.setErr(errClosing)
	}
	if r {
		c.side[modeRead].setDeadline(t)
	}
	if w {
		c.side[modeWrite].setDeadline(t)
	}
	return nil
}

func (c *streamConn) control(f func(fd int) error) error {
	if c.closing.Load() {
		return errClosing
	}
	var ferr error
	if err := c.s.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// SetReadBuffer sets SO_RCVBUF.
func (c *streamConn) SetReadBuffer(bytes int) error { return setBuffer(c, unix.SO_RCVBUF, bytes) }

// SetWriteBuffer sets SO_SNDBUF.
func (c *streamConn) SetWriteBuffer(bytes int) error { return setBuffer(c, unix.SO_SNDBUF, bytes) }

// readFrom is Read with no address, as net's ReadFrom on a stream (which
// reports the end as 0, nil rather than io.EOF).
func (c *streamConn) readFrom(b []byte) (int, net.Addr, error) {
	n, err := c.Read(b)
	if err == io.EOF {
		err = nil
	}
	return n, nil, err
}

// writeTo fails as net's WriteTo on a connected stream does.
func (c *streamConn) writeTo(b []byte, addr net.Addr) (int, error) {
	family := unix.AF_UNIX
	if c.kind == kindTCP {
		family = unix.AF_INET
	}
	err := net.ErrWriteToConnected
	if _, aerr := writeToSockaddr(family, addr); aerr != nil {
		err = aerr
	}
	if err == errMissingAddress {
		addr = nil // a nil address is no Addr, as in net
	}
	return 0, &net.OpError{Op: "write", Net: c.net, Source: c.laddr, Addr: addr, Err: err}
}

// CloseRead shuts down the reading side. On a loop.DirectReadStream the
// socket is shut down, as net's is, and reads then return what its kernel
// returns (on Linux: bytes already there, on TCP even bytes that come
// after, then io.EOF). Otherwise Read returns io.EOF from then on: the
// socket itself is not shut down (the library would take the EOF for the
// peer's and close the connection); reading stays paused and bytes
// already queued are dropped.
func (c *streamConn) CloseRead() error {
	if c.closing.Load() {
		return c.opErr("close", errClosing)
	}
	if c.dr != nil {
		if err := c.dr.CloseRead(); err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = errClosing
			}
			return c.opErr("close", err)
		}
		// The bytes the loop read before, then its empty Data, are
		// queued once a call on its goroutine returns.
		_ = c.h.call(func() {})
		return nil
	}
	c.mu.Lock()
	c.rdShut = true
	c.dropped = c.dropped || c.unread > 0
	c.chunks, c.unread = nil, 0
	c.paused = true
	c.mu.Unlock()
	c.s.SetReadPaused(true)
	c.side[modeRead].ready()
	return nil
}

// CloseWrite shuts down the writing side: the peer reads io.EOF after the
// bytes written so far.
func (c *streamConn) CloseWrite() error {
	if c.closing.Load() {
		return c.opErr("close", errClosing)
	}
	if err := c.s.CloseWrite(); err != nil {
		if errors.Is(err, net.ErrClosed) {
			err = errClosing
		}
		return c.opErr("close", err)
	}
	return nil
}

// SyscallConn returns a raw network connection. Control runs on the
// library's socket; Read and Write pause the library's reading, make sure
// it holds no written bytes, and wait with poll(2) in short slices, since
// the library cannot report readiness without doing the I/O itself.
func (c *streamConn) SyscallConn() (syscall.RawConn, error) { return &streamRaw{c}, nil }

type streamRaw struct{ c *streamConn }

func (r *streamRaw) Control(f func(fd uintptr)) error {
	c := r.c
	if err := c.control(func(fd int) error { f(uintptr(fd)); return nil }); err != nil {
		// net names only the local address here.
		return &net.OpError{Op: "raw-control", Net: c.net, Source: nil, Addr: c.laddr, Err: err}
	}
	return nil
}

func (r *streamRaw) Read(f func(fd uintptr) bool) error {
	c := r.c
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.mu.Lock()
	wasPaused := c.paused
	c.paused = true
	c.mu.Unlock()
	if !wasPaused {
		c.s.SetReadPaused(true)
	}
	return r.wait("raw-read", modeRead, unix.POLLIN, f)
}

func (r *streamRaw) Write(f func(fd uintptr) bool) error {
	c := r.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Bytes the stream still holds go first.
	for {
		if c.closing.Load() {
			return c.opErr("raw-write", errClosing)
		}
		_, held, err := c.s.Write(nil)
		if err != nil {
			return c.opErr("raw-write", err)
		}
		if !held {
			break
		}
		if err := streamWait(&c.side[modeWrite], &c.closing); err != nil {
			return c.opErr("raw-write", err)
		}
	}
	return r.wait("raw-write", modeWrite, unix.POLLOUT, f)
}

// wait calls f until it reports done, polling the fd in between.
func (r *streamRaw) wait(op string, mode int, events int16, f func(fd uintptr) bool) error {
	c := r.c
	s := &c.side[mode]
	for {
		if c.closing.Load() {
			return c.opErr(op, errClosing)
		}
		if s.dl.Load() < 0 {
			return c.opErr(op, os.ErrDeadlineExceeded)
		}
		done := false
		err := c.control(func(fd int) error {
			if done = f(uintptr(fd)); done {
				return nil
			}
			slice := rawPollSlice
			if dl := s.dl.Load(); dl > 0 {
				slice = min(slice, time.Duration(dl-mono())+time.Millisecond)
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
			_, perr := unix.Poll(pfd, max(int(slice/time.Millisecond), 1))
			if perr != nil && perr != unix.EINTR {
				return os.NewSyscallError("poll", perr)
			}
			return nil
		})
		if err != nil {
			return c.opErr(op, err)
		}
		if done {
			return nil
		}
		if dl := s.dl.Load(); dl > 0 && mono() >= dl {
			s.expire()
		}
	}
}
