package scheduler

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sock is the socket under a hub connection: an fd the hub polls (conn)
// or a connection of a loop that owns its sockets (streamConn). The
// exported connection types (TCPConn, UnixConn, UDPConn) wrap either, so
// a type assertion on a hub connection does not depend on the loop that
// carries it, and the setters they add exist once.
type sock interface {
	net.Conn
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
	CloseRead() error
	CloseWrite() error
	SyscallConn() (syscall.RawConn, error)
	// control runs f with the fd; errClosing once the socket is closed.
	control(f func(fd int) error) error
	// opErr is net's error for op, naming both addresses.
	opErr(op string, err error) error
	// setErr is net's error for the generic setters (deadlines, buffer
	// sizes), which name only the local address.
	setErr(err error) error
	// readFrom and writeTo are net.PacketConn's ReadFrom and WriteTo.
	readFrom(b []byte) (int, net.Addr, error)
	writeTo(b []byte, addr net.Addr) (int, error)
}

var (
	_ sock = conn{}
	_ sock = (*streamConn)(nil)
)

// setsockoptInt sets an integer socket option on s's fd.
func setsockoptInt(s sock, level, opt, v int) error {
	return s.control(func(fd int) error {
		return os.NewSyscallError("setsockopt", setsockoptIntFunc(fd, level, opt, v))
	})
}

// setBuffer sets SO_RCVBUF or SO_SNDBUF with net's error.
func setBuffer(s sock, opt, bytes int) error {
	if err := setsockoptInt(s, unix.SOL_SOCKET, opt, bytes); err != nil {
		return s.setErr(err)
	}
	return nil
}

// conn is a hub socket with an fd: net.Conn's methods with the standard
// library's error values. A single pointer, it is stored in a sock
// without an allocation.
type conn struct {
	fd *netFD
}

func (c conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.fd.net, Source: c.fd.laddr, Addr: c.fd.raddr, Err: err}
}

func (c conn) setErr(err error) error {
	return &net.OpError{Op: "set", Net: c.fd.net, Source: nil, Addr: c.fd.laddr, Err: err}
}

func (c conn) control(f func(fd int) error) error { return c.fd.control(f) }

// Read implements net.Conn.
func (c conn) Read(b []byte) (int, error) {
	n, err := c.fd.Read(b)
	if err != nil && err != io.EOF {
		err = c.opErr("read", err)
	}
	return n, err
}

// Write implements net.Conn.
func (c conn) Write(b []byte) (int, error) {
	n, err := c.fd.Write(b)
	if err != nil {
		err = c.opErr("write", err)
	}
	return n, err
}

// Close implements net.Conn: every blocked call returns net.ErrClosed.
func (c conn) Close() error {
	if err := c.fd.Close(); err != nil {
		return c.opErr("close", err)
	}
	return nil
}

// LocalAddr implements net.Conn.
func (c conn) LocalAddr() net.Addr { return c.fd.laddr }

// RemoteAddr implements net.Conn.
func (c conn) RemoteAddr() net.Addr { return c.fd.raddr }

// SetDeadline implements net.Conn.
func (c conn) SetDeadline(t time.Time) error { return c.setDeadline(t, true, true) }

// SetReadDeadline implements net.Conn.
func (c conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline implements net.Conn.
func (c conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c conn) setDeadline(t time.Time, r, w bool) error {
	if err := c.fd.setDeadline(t, r, w); err != nil {
		return c.setErr(err)
	}
	return nil
}

// SetReadBuffer sets SO_RCVBUF.
func (c conn) SetReadBuffer(bytes int) error { return setBuffer(c, unix.SO_RCVBUF, bytes) }

// SetWriteBuffer sets SO_SNDBUF.
func (c conn) SetWriteBuffer(bytes int) error { return setBuffer(c, unix.SO_SNDBUF, bytes) }

// SyscallConn returns a raw network connection whose Read and Write wait
// on the hub.
func (c conn) SyscallConn() (syscall.RawConn, error) { return &rawConn{c.fd}, nil }

// CloseRead shuts down the reading side.
func (c conn) CloseRead() error {
	if err := c.fd.shutdown(unix.SHUT_RD); err != nil {
		return c.opErr("close", err)
	}
	return nil
}

// CloseWrite shuts down the writing side: the peer reads io.EOF.
func (c conn) CloseWrite() error {
	if err := c.fd.shutdown(unix.SHUT_WR); err != nil {
		return c.opErr("close", err)
	}
	return nil
}

func (c conn) readFrom(b []byte) (int, net.Addr, error) {
	n, sa, err := c.fd.recvfrom(b)
	if err != nil {
		return n, nil, c.opErr("read", err)
	}
	var addr net.Addr
	if sa != nil {
		kind, _ := classify(c.fd.net)
		addr = sockaddrToAddr(kind, c.fd.sotype, sa)
	}
	return n, addr, nil
}

func (c conn) writeTo(b []byte, addr net.Addr) (int, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "write", Net: c.fd.net, Source: c.fd.laddr, Addr: addr, Err: err}
	}
	sa, err := writeToSockaddr(c.fd.family, addr)
	if err == errMissingAddress {
		// A nil address is no Addr, as in net.
		return 0, &net.OpError{Op: "write", Net: c.fd.net, Source: c.fd.laddr, Err: err}
	}
	if err != nil {
		return 0, opErr(err)
	}
	if c.fd.raddr != nil {
		return 0, opErr(net.ErrWriteToConnected)
	}
	n, err := c.fd.sendto(b, sa)
	if err != nil {
		return n, opErr(err)
	}
	return n, nil
}

// writeToSockaddr converts WriteTo's address for a socket of family. As in
// net, it must be of the conn's own type (*net.UDPAddr or *net.UnixAddr),
// else EINVAL.
func writeToSockaddr(family int, addr net.Addr) (unix.Sockaddr, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		if family == unix.AF_UNIX {
			return nil, syscall.EINVAL
		}
		if a == nil {
			return nil, errMissingAddress
		}
		return ipSockaddr(family, a.IP, a.Port, a.Zone)
	case *net.UnixAddr:
		if family != unix.AF_UNIX {
			return nil, syscall.EINVAL
		}
		if a == nil {
			return nil, errMissingAddress
		}
		return &unix.SockaddrUnix{Name: a.Name}, nil
	}
	return nil, syscall.EINVAL
}

// TCPConn is a TCP connection on a hub, whichever loop carries it; it has
// the methods of *net.TCPConn that make sense on a hub socket.
type TCPConn struct{ sock }

// tcpSet sets an option with *net.TCPConn's error, which names both
// addresses.
func (c *TCPConn) tcpSet(level, opt, v int) error {
	if err := setsockoptInt(c.sock, level, opt, v); err != nil {
		return c.opErr("set", err)
	}
	return nil
}

// SetNoDelay controls Nagle's algorithm. As in net, a new connection has
// no delay (TCP_NODELAY set: Nagle's algorithm off).
func (c *TCPConn) SetNoDelay(noDelay bool) error {
	return c.tcpSet(unix.IPPROTO_TCP, unix.TCP_NODELAY, boolint(noDelay))
}

// SetKeepAlive enables TCP keep-alive probes.
func (c *TCPConn) SetKeepAlive(keepalive bool) error {
	return c.tcpSet(unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolint(keepalive))
}

// SetKeepAlivePeriod sets the idle time before keep-alive probes, rounded
// up to whole seconds (net's semantics since Go 1.23).
func (c *TCPConn) SetKeepAlivePeriod(d time.Duration) error {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	err := c.control(func(fd int) error {
		return os.NewSyscallError("setsockopt", setKeepAliveIdle(fd, secs))
	})
	if err != nil {
		return c.opErr("set", err)
	}
	return nil
}

// SetLinger sets SO_LINGER as *net.TCPConn.SetLinger does.
func (c *TCPConn) SetLinger(sec int) error {
	l := unix.Linger{}
	if sec >= 0 {
		l.Onoff = 1
		l.Linger = int32(sec)
	}
	err := c.control(func(fd int) error {
		return os.NewSyscallError("setsockopt", unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l))
	})
	if err != nil {
		return c.opErr("set", err)
	}
	return nil
}

func boolint(b bool) int {
	if b {
		return 1
	}
	return 0
}

// UnixConn is a unix-domain connection (stream or datagram) on a hub,
// whichever loop carries it.
type UnixConn struct{ sock }

// ReadFrom implements net.PacketConn. On a stream it reads like Read,
// with a nil address (and 0, nil at EOF, as net's does).
func (c *UnixConn) ReadFrom(b []byte) (int, net.Addr, error) { return c.readFrom(b) }

// WriteTo implements net.PacketConn. addr must be a *net.UnixAddr.
func (c *UnixConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.writeTo(b, addr) }

// UDPConn is a UDP socket on a hub.
type UDPConn struct{ sock }

// ReadFrom implements net.PacketConn.
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) { return c.readFrom(b) }

// WriteTo implements net.PacketConn. addr must be a *net.UDPAddr.
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.writeTo(b, addr) }

// rawConn implements syscall.RawConn over a hub socket.
type rawConn struct{ fd *netFD }

func (r *rawConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: r.fd.net, Source: r.fd.laddr, Addr: r.fd.raddr, Err: err}
}

func (r *rawConn) Control(f func(fd uintptr)) error {
	err := r.fd.control(func(fd int) error { f(uintptr(fd)); return nil })
	if err != nil {
		// net names only the local address here.
		return &net.OpError{Op: "raw-control", Net: r.fd.net, Source: nil, Addr: r.fd.laddr, Err: err}
	}
	return nil
}

func (r *rawConn) Read(f func(fd uintptr) bool) error {
	if err := r.fd.readLock(); err != nil {
		return r.opErr("raw-read", err)
	}
	defer r.fd.readUnlock()
	if err := r.fd.pd.prepare(modeRead); err != nil {
		return r.opErr("raw-read", err)
	}
	for !f(uintptr(r.fd.sysfd())) {
		if err := r.fd.pd.wait(modeRead); err != nil {
			return r.opErr("raw-read", err)
		}
	}
	return nil
}

func (r *rawConn) Write(f func(fd uintptr) bool) error {
	if err := r.fd.writeLock(); err != nil {
		return r.opErr("raw-write", err)
	}
	defer r.fd.writeUnlock()
	if err := r.fd.pd.prepare(modeWrite); err != nil {
		return r.opErr("raw-write", err)
	}
	for !f(uintptr(r.fd.sysfd())) {
		if err := r.fd.pd.wait(modeWrite); err != nil {
			return r.opErr("raw-write", err)
		}
	}
	return nil
}

// Listener is a stream listener (tcp or unix) on a hub.
type Listener struct {
	fd   *netFD
	kind netKind
}

// Accept waits for and returns the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	s, rsa, err := l.fd.accept()
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: l.fd.net, Source: nil, Addr: l.fd.laddr, Err: err}
	}
	c, err := l.fd.pd.h.newConn(s, l.fd.family, l.fd.sotype, l.fd.net, l.kind, rsa)
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: l.fd.net, Source: nil, Addr: l.fd.laddr, Err: err}
	}
	return c, nil
}

// Close stops listening; a blocked Accept returns net.ErrClosed.
func (l *Listener) Close() error {
	if err := l.fd.Close(); err != nil {
		return &net.OpError{Op: "close", Net: l.fd.net, Source: nil, Addr: l.fd.laddr, Err: err}
	}
	return nil
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.fd.laddr }

// SetDeadline sets the deadline for Accept. Like *net.TCPListener's, its
// error is not wrapped in a *net.OpError.
func (l *Listener) SetDeadline(t time.Time) error {
	return l.fd.setDeadline(t, true, true)
}

// SyscallConn returns a raw connection for the listening socket.
func (l *Listener) SyscallConn() (syscall.RawConn, error) { return &rawConn{l.fd}, nil }
