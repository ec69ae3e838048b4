package scheduler

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

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

// ListenSpread listens on hubs[0] and hands each accepted connection to
// the hubs in turn, so that one listener serves every hub (one per core)
// in one process: goroutines or tasks of each hub then serve the
// connections it was given. Accept returns a connection of the hub whose
// turn it is; Hub.Go on that hub runs a task beside it.
func ListenSpread(hubs []*Hub, network, address string) (*SpreadListener, error) {
	if len(hubs) == 0 {
		return nil, &net.OpError{Op: "listen", Net: network, Err: errors.New("ListenSpread with no hub")}
	}
	for i, h := range hubs {
		if h == nil {
			return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("ListenSpread: hub %d is nil", i)}
		}
		if err := h.checkWatch(); err != nil {
			return nil, &net.OpError{Op: "listen", Net: network, Err: err}
		}
	}
	ln, err := hubs[0].Listen(network, address)
	if err != nil {
		return nil, err
	}
	l, ok := ln.(*Listener)
	if !ok {
		_ = ln.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("ListenSpread needs fd listeners: %w", errors.ErrUnsupported)}
	}
	return &SpreadListener{Listener: l, hubs: append([]*Hub(nil), hubs...)}, nil
}

// SpreadListener is a listener whose connections go to several hubs in
// turn (ListenSpread).
type SpreadListener struct {
	*Listener
	hubs []*Hub
	next atomic.Uint64
}

// Accept waits for the next connection and returns it as a connection of
// the hub whose turn it is. HubOf tells which.
func (l *SpreadListener) Accept() (net.Conn, error) {
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
