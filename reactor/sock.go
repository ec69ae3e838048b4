package reactor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/backoff"
	"github.com/evhub/evhub/internal/nbsock"
)

// listenSpec is a resolved stream address to listen on.
type listenSpec struct {
	network string
	fam     int
	v6only  bool
	sa      unix.Sockaddr
	addr    net.Addr // as net reports it in errors
	path    string   // unix sockets: removed on close
}

func resolveListen(network, address string) (listenSpec, error) {
	ls := listenSpec{network: network}
	switch network {
	case "unix":
		a, err := net.ResolveUnixAddr(network, address)
		if err != nil {
			return ls, err
		}
		ls.addr, ls.fam, ls.sa = a, unix.AF_UNIX, &unix.SockaddrUnix{Name: a.Name}
		if a.Name != "" && a.Name[0] != '@' {
			ls.path = a.Name
		}
		return ls, nil
	case "tcp", "tcp4", "tcp6":
	default:
		return ls, net.UnknownNetworkError(network)
	}
	a, err := net.ResolveTCPAddr(network, address)
	if err != nil {
		return ls, err
	}
	ls.addr = a
	ip4 := a.IP.To4()
	wild := a.IP == nil || a.IP.IsUnspecified()
	switch {
	case network == "tcp4" || (network == "tcp" && ip4 != nil && !wild):
		if a.IP != nil && ip4 == nil {
			return ls, &net.AddrError{Err: "non-IPv4 address", Addr: a.IP.String()}
		}
		sa := &unix.SockaddrInet4{Port: a.Port}
		if ip4 != nil {
			copy(sa.Addr[:], ip4)
		}
		ls.fam, ls.sa = unix.AF_INET, sa
	default:
		// tcp6, an IPv6 address, or the wildcard on "tcp", which listens
		// on both families as net does.
		if network == "tcp6" && ip4 != nil && !wild {
			return ls, &net.AddrError{Err: "non-IPv6 address", Addr: a.IP.String()}
		}
		sa := &unix.SockaddrInet6{Port: a.Port}
		if !wild {
			copy(sa.Addr[:], a.IP.To16())
		}
		if a.Zone != "" {
			if ifi, err := net.InterfaceByName(a.Zone); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			}
		}
		ls.fam, ls.sa, ls.v6only = unix.AF_INET6, sa, network == "tcp6"
	}
	return ls, nil
}

// listenFD opens a non-blocking listening socket. port, when non-zero,
// replaces the resolved port (the later sockets of a SO_REUSEPORT group
// bind the port the first one got).
func listenFD(ls listenSpec, reusePort bool, port int) (int, error) {
	s, err := nbsock.Socket(ls.fam, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(s)
		return -1, os.NewSyscallError(op, err)
	}
	sa := ls.sa
	if ls.fam != unix.AF_UNIX {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("setsockopt", err)
		}
		if reusePort {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return fail("setsockopt", err)
			}
		}
		if ls.fam == unix.AF_INET6 {
			if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolint(ls.v6only)); err != nil {
				return fail("setsockopt", err)
			}
		}
		if port != 0 {
			switch a := sa.(type) {
			case *unix.SockaddrInet4:
				c := *a
				c.Port = port
				sa = &c
			case *unix.SockaddrInet6:
				c := *a
				c.Port = port
				sa = &c
			}
		}
	}
	if err := unix.Bind(s, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(s, unix.SOMAXCONN); err != nil {
		return fail("listen", err)
	}
	return s, nil
}

func boolint(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setNoDelay turns Nagle's algorithm off, as net does on every TCP
// connection. Best effort, as in net.
func setNoDelay(s int) {
	_ = unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

// net's keep-alive defaults (net/dial.go).
const (
	defaultKeepAliveIdle     = 15 * time.Second
	defaultKeepAliveInterval = 15 * time.Second
	defaultKeepAliveCount    = 9
)

// setKeepAlive applies cfg as net.TCPConn.SetKeepAliveConfig does: zero
// fields take net's defaults, negative ones leave the kernel's value.
// Best effort, as in net's accept.
func setKeepAlive(s int, cfg net.KeepAliveConfig) {
	if !cfg.Enable {
		return
	}
	_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	secs := func(d, def time.Duration) int {
		if d == 0 {
			d = def
		}
		return int((d + time.Second - 1) / time.Second)
	}
	if cfg.Idle >= 0 {
		_ = setKeepAliveIdle(s, secs(cfg.Idle, defaultKeepAliveIdle))
	}
	if cfg.Interval >= 0 {
		_ = setKeepAliveInterval(s, secs(cfg.Interval, defaultKeepAliveInterval))
	}
	if cfg.Count >= 0 {
		n := cfg.Count
		if n == 0 {
			n = defaultKeepAliveCount
		}
		_ = setKeepAliveCount(s, n)
	}
}

// sockAddr converts a socket address to net's concrete types.
func sockAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *unix.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		zone := ""
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: ip, Port: a.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

func sockPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

// dupConn takes a connected stream socket out of a net.Conn (or anything
// with SyscallConn) as a non-blocking close-on-exec duplicate; the caller
// closes the original.
func dupConn(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return -1, os.NewSyscallError("setnonblock", err)
	}
	return nfd, nil
}

// checkStream reports an error unless fd is a stream socket.
func checkStream(fd int) error {
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if t != unix.SOCK_STREAM {
		return fmt.Errorf("reactor: fd %d is not a stream socket (SO_TYPE %d)", fd, t)
	}
	return nil
}

// isTemporaryAccept: out of descriptors or of kernel memory, an accept
// fails until something is freed.
func isTemporaryAccept(err error) bool {
	return backoff.Exhausted(err) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

// acceptFn is acceptFD, replaced in tests to inject failures.
var acceptFn = acceptFD
