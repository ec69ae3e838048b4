package scheduler

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Adopt makes a hub connection of a connected stream socket (TCP or unix)
// given by its fd, which the hub owns from then on (it is closed on error
// too). buffered holds bytes already read from the socket by its previous
// owner: Read returns them first, then reads the socket, so no byte is
// lost or reordered. It is how a connection leaves a callback-level
// reactor for blocking code (package reactor's Conn.HandOver) and how a
// listener hands connections to other hubs (ListenSpread). The concrete
// type is *TCPConn or *UnixConn, or *BufferedConn wrapping one when
// buffered is not empty.
func (h *Hub) Adopt(fd int, buffered []byte) (net.Conn, error) {
	fail := func(err error) (net.Conn, error) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("scheduler: Adopt fd %d: %w", fd, err)
	}
	if h.closed.Load() {
		return fail(ErrHubClosed)
	}
	if err := h.checkWatch(); err != nil {
		return fail(err)
	}
	sotype, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt", err))
	}
	if sotype != unix.SOCK_STREAM {
		return fail(errors.New("not a stream socket"))
	}
	lsa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(os.NewSyscallError("getsockname", err))
	}
	rsa, err := unix.Getpeername(fd)
	if err != nil {
		return fail(os.NewSyscallError("getpeername", err))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(os.NewSyscallError("setnonblock", err))
	}
	kind, fam, network := kindTCP, unix.AF_INET, "tcp"
	switch lsa.(type) {
	case *unix.SockaddrInet6:
		fam = unix.AF_INET6
	case *unix.SockaddrUnix:
		kind, fam, network = kindUnix, unix.AF_UNIX, "unix"
	}
	c, err := h.newConn(fd, fam, sotype, network, kind, rsa)
	if err != nil {
		return nil, fmt.Errorf("scheduler: Adopt fd %d: %w", fd, err)
	}
	if len(buffered) == 0 {
		return c, nil
	}
	return &BufferedConn{Conn: c, pre: append([]byte(nil), buffered...)}, nil
}

// BufferedConn is an adopted connection that had bytes read before it
// was adopted: Read returns those first. Conn is the hub connection
// (*TCPConn or *UnixConn), for its other methods.
type BufferedConn struct {
	net.Conn
	mu  sync.Mutex
	pre []byte
}

// Read returns the bytes read before the adoption first, then reads the
// connection.
func (c *BufferedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// CloseWrite shuts down the writing side, as *net.TCPConn's.
func (c *BufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SpreadMode is how a SpreadListener spreads connections over its hubs.
type SpreadMode int

const (
	// SpreadRoundRobin: one listening socket, on hubs[0]; Accept makes
	// each accepted connection a connection of the hubs in turn. Exact,
	// any stream network.
	SpreadRoundRobin SpreadMode = iota
	// SpreadReusePort: every hub has a listening socket of its own on the
	// same address (SO_REUSEPORT), and the kernel spreads incoming
	// connections over them by a hash of their addresses: no listener is
	// shared, but few clients spread unevenly. TCP only.
	SpreadReusePort
)

func (m SpreadMode) String() string {
	switch m {
	case SpreadRoundRobin:
		return "round-robin"
	case SpreadReusePort:
		return "reuseport"
	}
	return fmt.Sprintf("SpreadMode(%d)", int(m))
}

// ListenSpread listens on hubs[0] and hands each accepted connection to
// the hubs in turn, so that one listener serves every hub (one per core)
// in one process: goroutines or tasks of each hub then serve the
// connections it was given. Accept returns a connection of the hub whose
// turn it is; Hub.Go on that hub runs a task beside it. It is
// ListenSpreadMode with SpreadRoundRobin.
func ListenSpread(hubs []*Hub, network, address string) (*SpreadListener, error) {
	return ListenSpreadMode(hubs, network, address, SpreadRoundRobin)
}

// ListenSpreadMode is ListenSpread with a choice of how connections are
// spread. With SpreadReusePort every hub listens on the address with a
// socket of its own (an address with port 0 gets one port, shared by
// all); Listeners returns them, one per hub in order, for an accept loop
// on each hub (a task of that hub, say) that never hands a connection
// across hubs, and Accept merges them for goroutine-mode servers.
func ListenSpreadMode(hubs []*Hub, network, address string, mode SpreadMode) (*SpreadListener, error) {
	if len(hubs) == 0 {
		return nil, &net.OpError{Op: "listen", Net: network, Err: errors.New("ListenSpread with no hub")}
	}
	if mode != SpreadRoundRobin && mode != SpreadReusePort {
		return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("ListenSpread: unknown %v", mode)}
	}
	for i, h := range hubs {
		if h == nil {
			return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("ListenSpread: hub %d is nil", i)}
		}
		if err := h.checkWatch(); err != nil {
			return nil, &net.OpError{Op: "listen", Net: network, Err: err}
		}
	}
	sl := &SpreadListener{hubs: append([]*Hub(nil), hubs...), mode: mode, done: make(chan struct{})}
	n := 1
	if mode == SpreadReusePort {
		n = len(hubs)
	}
	for i := range n {
		ln, err := hubs[i].listen(network, address, mode == SpreadReusePort)
		if err == nil {
			l, ok := ln.(*Listener)
			if !ok {
				_ = ln.Close()
				err = &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("ListenSpread needs fd listeners: %w", errors.ErrUnsupported)}
			} else {
				sl.lns = append(sl.lns, l)
			}
		}
		if err != nil {
			for _, l := range sl.lns {
				_ = l.Close()
			}
			return nil, err
		}
		if i == 0 {
			// The others bind the port the first one got.
			address = ln.Addr().String()
		}
	}
	sl.Listener = sl.lns[0]
	return sl, nil
}

// SpreadListener is a listener whose connections go to several hubs
// (ListenSpread, ListenSpreadMode). Addr is the address every hub
// listens on.
type SpreadListener struct {
	*Listener
	hubs []*Hub
	mode SpreadMode
	lns  []*Listener // SpreadReusePort: one per hub
	next atomic.Uint64

	// SpreadReusePort's merged Accept: one goroutine per listener, started
	// by the first Accept, hands connections over acc.
	once      sync.Once
	acc       chan accepted
	done      chan struct{}
	closeOnce sync.Once
	pumps     sync.WaitGroup
	deadline  atomic.Pointer[time.Time]
}

type accepted struct {
	c   net.Conn
	err error
}

// Mode is how the listener spreads connections.
func (l *SpreadListener) Mode() SpreadMode { return l.mode }

// Listeners returns the listening sockets: with SpreadReusePort one per
// hub, Listeners()[i] accepting connections of hubs[i]; with
// SpreadRoundRobin the one on hubs[0], whose own Accept does not spread.
// They close with the SpreadListener.
func (l *SpreadListener) Listeners() []net.Listener {
	out := make([]net.Listener, len(l.lns))
	for i, ln := range l.lns {
		out[i] = ln
	}
	return out
}

// Accept waits for the next connection and returns it as a connection of
// a hub: the hub whose turn it is (SpreadRoundRobin) or the hub whose
// socket the kernel chose (SpreadReusePort). HubOf tells which.
func (l *SpreadListener) Accept() (net.Conn, error) {
	if l.mode == SpreadReusePort {
		return l.acceptMerged()
	}
	s, rsa, err := l.fd.accept()
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: l.fd.net, Addr: l.fd.laddr, Err: err}
	}
	h := l.hubs[int(l.next.Add(1)-1)%len(l.hubs)]
	c, err := h.newConn(s, l.fd.family, l.fd.sotype, l.fd.net, l.kind, rsa)
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: l.fd.net, Addr: l.fd.laddr, Err: err}
	}
	return c, nil
}

func (l *SpreadListener) acceptMerged() (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "accept", Net: l.fd.net, Addr: l.fd.laddr, Err: err}
	}
	select {
	case <-l.done:
		return nil, opErr(net.ErrClosed)
	default:
	}
	l.once.Do(func() {
		l.acc = make(chan accepted)
		for _, ln := range l.lns {
			l.pumps.Add(1)
			go l.pump(ln)
		}
	})
	var expire <-chan time.Time
	if dl := l.deadline.Load(); dl != nil {
		d := time.Until(*dl)
		if d <= 0 {
			return nil, opErr(os.ErrDeadlineExceeded)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expire = t.C
	}
	select {
	case a := <-l.acc:
		return a.c, a.err
	case <-expire:
		return nil, opErr(os.ErrDeadlineExceeded)
	case <-l.done:
		return nil, opErr(net.ErrClosed)
	}
}

// pump accepts on one hub's socket for the merged Accept until Close.
func (l *SpreadListener) pump(ln *Listener) {
	defer l.pumps.Done()
	for {
		c, err := ln.Accept()
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
		select {
		case l.acc <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				_ = c.Close()
			}
			return
		}
	}
}

// SetDeadline sets the deadline for Accept (with SpreadReusePort, for the
// merged Accept; the sockets of Listeners keep their own). Like
// *net.TCPListener's, its error is not wrapped in a *net.OpError.
func (l *SpreadListener) SetDeadline(t time.Time) error {
	if l.mode != SpreadReusePort {
		return l.Listener.SetDeadline(t)
	}
	select {
	case <-l.done:
		return net.ErrClosed
	default:
	}
	if t.IsZero() {
		l.deadline.Store(nil)
	} else {
		l.deadline.Store(&t)
	}
	return nil
}

// Close stops listening on every socket; a blocked Accept returns
// net.ErrClosed.
func (l *SpreadListener) Close() error {
	err := error(&net.OpError{Op: "close", Net: l.fd.net, Addr: l.fd.laddr, Err: net.ErrClosed})
	l.closeOnce.Do(func() {
		close(l.done)
		var errs []error
		for _, ln := range l.lns {
			errs = append(errs, ln.Close())
		}
		l.pumps.Wait()
		err = errors.Join(errs...)
	})
	return err
}

// HubOf reports the hub of a connection Accept returned (nil if it is not
// one of theirs).
func (l *SpreadListener) HubOf(c net.Conn) *Hub {
	var s sock
	switch c := c.(type) {
	case *TCPConn:
		s = c.sock
	case *UnixConn:
		s = c.sock
	default:
		return nil
	}
	fc, ok := s.(conn) // a stream conn of a loop that owns its sockets is none of theirs
	if !ok {
		return nil
	}
	fd := fc.fd
	for _, h := range l.hubs {
		if fd.pd.h == h {
			return h
		}
	}
	return nil
}
