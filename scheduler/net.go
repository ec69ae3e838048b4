package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

var (
	errMissingAddress = errors.New("missing address")
	errNoSuitable     = "no suitable address found"
)

// The standard library's own context errors ("operation was canceled",
// "i/o timeout"), taken from a dial that net refuses before any syscall,
// so that hub errors are the very same values.
var (
	stdErrsOnce sync.Once
	errCanceled error = context.Canceled
	errTimeout  error = context.DeadlineExceeded
)

func loadStdErrs() {
	stdErrsOnce.Do(func() {
		grab := func(ctx context.Context) error {
			_, err := (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:9")
			var oe *net.OpError
			if errors.As(err, &oe) {
				return oe.Err
			}
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if e := grab(ctx); e != nil {
			errCanceled = e
		}
		ctx2, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
		defer cancel2()
		if e := grab(ctx2); e != nil {
			errTimeout = e
		}
	})
}

// mapErr maps context errors to net's historical values, as net does.
func mapErr(err error) error {
	loadStdErrs()
	switch err {
	case context.Canceled:
		return errCanceled
	case context.DeadlineExceeded:
		return errTimeout
	}
	return err
}

// opened wraps a new socket fd in a netFD tracked by the hub, closing it if
// the hub is closed.
func (h *Hub) opened(s, fam, sotype int, network string) (*netFD, error) {
	fd, err := newFD(h, s, fam, sotype, network)
	if err != nil {
		closeFunc(s)
		return nil, err
	}
	if h.edge != nil {
		// Register once, now, as the runtime does at fd creation: the
		// loop then reports every edge and no wait ever posts again.
		fd.pd.requested.Store(true)
		err := h.call(fd.pd.registerFn)
		if err == nil {
			if e := fd.pd.fatal.Load(); e != nil {
				err = *e
			}
		}
		if err != nil {
			fd.Close()
			return nil, err
		}
	}
	return fd, nil
}

func (h *Hub) checkWatch() error {
	if !loop.Supports(h.loop, loop.CapWatch) {
		return loop.Unsupported(h.loop, loop.CapWatch)
	}
	return nil
}

// Listen announces on a local address, like net.Listen. Networks: tcp,
// tcp4, tcp6, unix, unixpacket.
func (h *Hub) Listen(network, address string) (net.Listener, error) {
	return h.listen(network, address, false)
}

// listen is Listen, with SO_REUSEPORT set on a TCP socket if reusePort.
func (h *Hub) listen(network, address string, reusePort bool) (net.Listener, error) {
	opErr := func(addr net.Addr, err error) error {
		return &net.OpError{Op: "listen", Net: network, Source: nil, Addr: addr, Err: err}
	}
	kind, sotype := classify(network)
	switch {
	case kind == kindTCP:
	case kind == kindUnix && sotype != unix.SOCK_DGRAM:
	default:
		return nil, badNetwork("listen", network, address)
	}
	if h.closed.Load() {
		return nil, opErr(nil, ErrHubClosed)
	}
	address, err := h.listenAddress(network, kind, address)
	if err != nil {
		return nil, opErr(nil, err)
	}
	if err := h.checkWatch(); err != nil {
		if ss, ok := h.loop.(loop.StreamServer); ok && !reusePort {
			return h.listenStream(ss, network, address)
		}
		return nil, opErr(nil, err)
	}
	if reusePort && kind != kindTCP {
		return nil, opErr(nil, fmt.Errorf("SO_REUSEPORT needs TCP: %w", errors.ErrUnsupported))
	}
	la, err := resolveLocal(network, kind, address)
	if err != nil {
		return nil, opErr(la.addr, err)
	}
	fam, v6, sa, laddr := la.fam, la.v6only, la.sa, la.addr
	path := la.path
	s, err := socketFunc(fam, sotype, 0)
	if err != nil {
		return nil, opErr(laddr, os.NewSyscallError("socket", err))
	}
	if err := listenSocket(s, fam, v6, sa, reusePort); err != nil {
		closeFunc(s)
		return nil, opErr(laddr, err)
	}
	fd, err := h.opened(s, fam, sotype, network)
	if err != nil {
		return nil, opErr(laddr, err)
	}
	if lsa, err := unix.Getsockname(s); err == nil {
		fd.laddr = sockaddrToAddr(kind, sotype, lsa)
	}
	if kind == kindUnix {
		fd.laddr = &net.UnixAddr{Name: path, Net: network}
		if path != "" && path[0] != '@' {
			fd.unlink = path
		}
	}
	return &Listener{fd: fd, kind: kind}, nil
}

func listenSocket(s, fam int, v6only bool, sa unix.Sockaddr, reusePort bool) error {
	if fam == unix.AF_INET6 {
		if err := setsockoptIntFunc(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolint(v6only)); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	if fam != unix.AF_UNIX {
		if err := setsockoptIntFunc(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
		if reusePort {
			if err := setsockoptIntFunc(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return os.NewSyscallError("setsockopt", err)
			}
		}
	}
	if err := unix.Bind(s, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(s, listenBacklog()); err != nil {
		return os.NewSyscallError("listen", err)
	}
	return nil
}

var backlogOnce = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err == nil {
		if n, err := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil && n > 0 {
			return n
		}
	}
	return unix.SOMAXCONN
})

func listenBacklog() int { return backlogOnce() }

// ListenPacket announces on a local address for datagrams, like
// net.ListenPacket. Networks: udp, udp4, udp6, unixgram.
func (h *Hub) ListenPacket(network, address string) (net.PacketConn, error) {
	opErr := func(addr net.Addr, err error) error {
		return &net.OpError{Op: "listen", Net: network, Source: nil, Addr: addr, Err: err}
	}
	kind, sotype := classify(network)
	if isRawIP(network) {
		return nil, opErr(nil, errRawIP)
	}
	if !(kind == kindUDP || (kind == kindUnix && sotype == unix.SOCK_DGRAM)) {
		return nil, badNetwork("listen", network, address)
	}
	if h.closed.Load() {
		return nil, opErr(nil, ErrHubClosed)
	}
	if !loop.Supports(h.loop, loop.CapPacket) {
		return nil, opErr(nil, loop.Unsupported(h.loop, loop.CapPacket))
	}
	if err := h.checkWatch(); err != nil {
		return nil, opErr(nil, err)
	}
	address, err := h.listenAddress(network, kind, address)
	if err != nil {
		return nil, opErr(nil, err)
	}
	la, err := resolveLocal(network, kind, address)
	if err != nil {
		return nil, opErr(la.addr, err)
	}
	fam, v6, sa, laddr := la.fam, la.v6only, la.sa, la.addr
	s, err := socketFunc(fam, sotype, 0)
	if err != nil {
		return nil, opErr(laddr, os.NewSyscallError("socket", err))
	}
	if fam == unix.AF_INET6 {
		if err := setsockoptIntFunc(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolint(v6)); err != nil {
			closeFunc(s)
			return nil, opErr(laddr, os.NewSyscallError("setsockopt", err))
		}
	}
	if fam != unix.AF_UNIX {
		// net sets SO_BROADCAST on datagram sockets.
		_ = setsockoptIntFunc(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	}
	if err := unix.Bind(s, sa); err != nil {
		closeFunc(s)
		return nil, opErr(laddr, os.NewSyscallError("bind", err))
	}
	fd, err := h.opened(s, fam, sotype, network)
	if err != nil {
		return nil, opErr(laddr, err)
	}
	if lsa, err := unix.Getsockname(s); err == nil {
		fd.laddr = sockaddrToAddr(kind, sotype, lsa)
	}
	if kind == kindUnix {
		fd.laddr = laddr
		return &UnixConn{conn{fd}}, nil
	}
	return &UDPConn{conn{fd}}, nil
}

// Dial connects to the address on the named network, like net.Dial.
func (h *Hub) Dial(network, address string) (net.Conn, error) {
	return h.DialContext(context.Background(), network, address)
}

// DialContext connects like net.Dialer.DialContext: names are resolved
// with the hub's resolver (SetResolver; off the hub from a task), the context's deadline and cancellation apply
// to resolution and to connecting, and the addresses found are tried in
// order until one succeeds.
func (h *Hub) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ctx == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("nil context")}
	}
	opErr := func(addr net.Addr, err error) error {
		return &net.OpError{Op: "dial", Net: network, Source: nil, Addr: addr, Err: err}
	}
	kind, sotype := classify(network)
	if isRawIP(network) {
		return nil, opErr(nil, errRawIP)
	}
	if kind == kindUnknown {
		return nil, opErr(nil, net.UnknownNetworkError(network))
	}
	if h.closed.Load() {
		return nil, opErr(nil, ErrHubClosed)
	}
	if !loop.Supports(h.loop, loop.CapDial) {
		return nil, opErr(nil, loop.Unsupported(h.loop, loop.CapDial))
	}
	if kind == kindUDP && !loop.Supports(h.loop, loop.CapPacket) {
		return nil, opErr(nil, loop.Unsupported(h.loop, loop.CapPacket))
	}
	if err := h.checkWatch(); err != nil {
		return nil, opErr(nil, err)
	}
	if kind == kindUnix {
		a, err := net.ResolveUnixAddr(network, address)
		if err != nil {
			return nil, opErr(nil, err)
		}
		c, err := h.dialOne(ctx, network, kind, sotype, unix.AF_UNIX, &unix.SockaddrUnix{Name: a.Name}, a)
		if err != nil {
			return nil, opErr(a, err)
		}
		return c, nil
	}
	addrs, err := h.resolve(ctx, network, address)
	if err != nil {
		return nil, opErr(nil, err)
	}
	var first error
	for _, ap := range addrs {
		var raddr net.Addr
		ip := net.IP(ap.Addr().AsSlice())
		if kind == kindUDP {
			raddr = &net.UDPAddr{IP: ip, Port: int(ap.Port()), Zone: ap.Addr().Zone()}
		} else {
			raddr = &net.TCPAddr{IP: ip, Port: int(ap.Port()), Zone: ap.Addr().Zone()}
		}
		select {
		case <-ctx.Done():
			return nil, opErr(raddr, mapErr(ctx.Err()))
		default:
		}
		fam, _ := family(network, ip, false)
		sa, err := ipSockaddr(fam, ip, int(ap.Port()), ap.Addr().Zone())
		if err != nil {
			return nil, opErr(raddr, err)
		}
		c, err := h.dialOne(ctx, network, kind, sotype, fam, sa, raddr)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = opErr(raddr, err)
		}
	}
	return nil, first
}

// resolve turns host:port into addresses suitable for network, with the
// hub's resolver (off the hub from a task).
func (h *Hub) resolve(ctx context.Context, network, address string) ([]netip.AddrPort, error) {
	if address == "" {
		return nil, errMissingAddress
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := h.Resolver().LookupPort(ctx, network, portStr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if host == "" {
		ips = []netip.Addr{netip.IPv4Unspecified()}
		if network[len(network)-1] == '6' {
			ips = []netip.Addr{netip.IPv6Unspecified()}
		}
	} else if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		found, err := h.Resolver().LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, ia := range found {
			if a, ok := netip.AddrFromSlice(ia.IP); ok {
				ips = append(ips, a.Unmap().WithZone(ia.Zone))
			}
		}
	}
	var out []netip.AddrPort
	for _, ip := range ips {
		ip4 := ip.Unmap().Is4()
		switch network[len(network)-1] {
		case '4':
			if !ip4 {
				continue
			}
		case '6':
			if ip4 {
				continue
			}
		}
		out = append(out, netip.AddrPortFrom(ip, uint16(port)))
	}
	if len(out) == 0 {
		return nil, &net.AddrError{Err: errNoSuitable, Addr: host}
	}
	return out, nil
}

func (h *Hub) dialOne(ctx context.Context, network string, kind netKind, sotype, fam int, sa unix.Sockaddr, raddr net.Addr) (c net.Conn, ret error) {
	s, err := socketFunc(fam, sotype, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if fam == unix.AF_INET6 {
		_ = setsockoptIntFunc(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if kind == kindUDP {
		_ = setsockoptIntFunc(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	}
	fd, err := h.opened(s, fam, sotype, network)
	if err != nil {
		return nil, err
	}
	defer func() {
		if ret != nil {
			fd.Close()
		}
	}()
	if d, ok := ctx.Deadline(); ok {
		fd.pd.side[modeWrite].setDeadline(d)
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			fd.pd.side[modeWrite].setDeadline(time.Unix(1, 0))
		})
		defer func() {
			if !stop() && ret == nil {
				// Cancelled after connecting: the socket's write side is
				// poisoned, so do not hand it out (net issue 16523).
				ret = mapErr(ctx.Err())
			}
		}()
	}
	if err := fd.connect(sa); err != nil {
		if ctx.Err() != nil {
			return nil, mapErr(ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The write deadline is the context's; it expired before
			// the context's own timer ran. net's error is the
			// context's, whichever timer fires first.
			return nil, mapErr(context.DeadlineExceeded)
		}
		return nil, err
	}
	fd.pd.side[modeWrite].setDeadline(time.Time{})
	if lsa, err := unix.Getsockname(s); err == nil {
		fd.laddr = sockaddrToAddr(kind, sotype, lsa)
	}
	fd.raddr = raddr
	if kind == kindUnix {
		if fd.laddr == nil || fd.laddr.(*net.UnixAddr).Name == "" {
			fd.laddr = nil
		}
	}
	return h.wrap(fd, kind), nil
}

// newConn wraps an accepted fd.
func (h *Hub) newConn(s, fam, sotype int, network string, kind netKind, rsa unix.Sockaddr) (net.Conn, error) {
	fd, err := h.opened(s, fam, sotype, network)
	if err != nil {
		return nil, err
	}
	if lsa, err := unix.Getsockname(s); err == nil {
		fd.laddr = sockaddrToAddr(kind, sotype, lsa)
	}
	if rsa != nil {
		fd.raddr = sockaddrToAddr(kind, sotype, rsa)
	}
	return h.wrap(fd, kind), nil
}

func (h *Hub) wrap(fd *netFD, kind netKind) net.Conn {
	switch kind {
	case kindTCP:
		setTCPDefaults(fd.sysfd())
		return &TCPConn{conn{fd}}
	case kindUDP:
		return &UDPConn{conn{fd}}
	}
	return &UnixConn{conn{fd}}
}

// localAddr is a resolved local address, ready to bind.
type localAddr struct {
	fam    int
	v6only bool
	sa     unix.Sockaddr
	addr   net.Addr // as net reports it in errors
	path   string   // unix sockets
}

// resolveLocal resolves a Listen or ListenPacket address the way net does.
// On error, addr is set when the failure came after resolution.
func resolveLocal(network string, kind netKind, address string) (localAddr, error) {
	var la localAddr
	if kind == kindUnix {
		a, err := net.ResolveUnixAddr(network, address)
		if err != nil {
			return la, err
		}
		la.addr, la.fam, la.path = a, unix.AF_UNIX, a.Name
		la.sa = &unix.SockaddrUnix{Name: a.Name}
		return la, nil
	}
	var (
		ip   net.IP
		port int
		zone string
	)
	if kind == kindTCP {
		a, err := net.ResolveTCPAddr(network, address)
		if err != nil {
			return la, err
		}
		la.addr, ip, port, zone = a, a.IP, a.Port, a.Zone
	} else {
		a, err := net.ResolveUDPAddr(network, address)
		if err != nil {
			return la, err
		}
		la.addr, ip, port, zone = a, a.IP, a.Port, a.Zone
	}
	la.fam, la.v6only = family(network, ip, true)
	var err error
	la.sa, err = ipSockaddr(la.fam, ip, port, zone)
	return la, err
}

// setTCPDefaults applies net's defaults to a new TCP connection: no Nagle,
// keep-alive probes after 15 s idle, every 15 s, 9 of them. They are best
// effort, as in net.
func setTCPDefaults(s int) {
	_ = setsockoptIntFunc(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = setsockoptIntFunc(s, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = setKeepAliveIdle(s, 15)
	_ = setKeepAliveInterval(s, 15)
	_ = setKeepAliveCount(s, 9)
}
