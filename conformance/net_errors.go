package conformance

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// errorCases compare, side by side with the standard library, the error of
// every failing operation: types along the chain, fields, errors.Is
// answers, Timeout and the normalised message.
func netErrorCases() []netCase {
	var cs []netCase
	add := func(name string, run func(t *testing.T, e *env)) {
		cs = append(cs, netCase{area: "errors", name: name, run: run})
	}
	for _, nw := range []string{"tcp", "unix"} {
		sfx := title(nw)
		add("ReadAfterClose"+sfx, func(t *testing.T, e *env) { errReadAfterClose(e, nw) })
		add("WriteAfterClose"+sfx, func(t *testing.T, e *env) { errWriteAfterClose(e, nw) })
		add("AcceptAfterClose"+sfx, func(t *testing.T, e *env) { errAcceptAfterClose(e, nw) })
		add("CloseTwice"+sfx, func(t *testing.T, e *env) { errCloseTwice(e, nw) })
		add("ReadEOF"+sfx, func(t *testing.T, e *env) { errReadEOF(e, nw) })
		add("ReadDeadline"+sfx, func(t *testing.T, e *env) { errReadDeadline(e, nw) })
		add("WriteDeadline"+sfx, func(t *testing.T, e *env) { errWriteDeadline(e, nw) })
		add("AcceptDeadline"+sfx, func(t *testing.T, e *env) { errAcceptDeadline(e, nw) })
		add("WriteAfterCloseWrite"+sfx, func(t *testing.T, e *env) { errWriteAfterCloseWrite(e, nw) })
		add("RawControlAfterClose"+sfx, func(t *testing.T, e *env) { errRawControlAfterClose(e, nw) })
		add("DialRefused"+sfx, func(t *testing.T, e *env) { errDialRefused(e, nw) })
		add("ListenInUse"+sfx, func(t *testing.T, e *env) { errListenInUse(e, nw) })
		add("SettersAfterClose"+sfx, func(t *testing.T, e *env) { errSettersAfterClose(e, nw) })
		add("ReadReset"+sfx, func(t *testing.T, e *env) { errReadReset(e, nw) })
		add("DialCanceled"+sfx, func(t *testing.T, e *env) { errDialContext(e, nw, false) })
		add("DialExpired"+sfx, func(t *testing.T, e *env) { errDialContext(e, nw, true) })
	}
	add("DialUnixMissing", errDialUnixMissing)
	add("DialBadAddress", errDialBadAddress)
	add("ListenBadAddress", errListenBadAddress)
	add("ListenPacketBadAddress", errListenPacketBadAddress)
	for _, kind := range []string{"Dial", "Listen", "ListenPacket"} {
		add("UnknownNetwork"+kind, func(t *testing.T, e *env) { errUnknownNetwork(e, kind) })
	}
	for _, nw := range []string{"udp", "unixgram"} {
		sfx := title(nw)
		add("PacketReadDeadline"+sfx, func(t *testing.T, e *env) { errPacketReadDeadline(e, nw) })
		add("PacketReadFromAfterClose"+sfx, func(t *testing.T, e *env) { errPacketReadAfterClose(e, nw) })
		add("PacketWriteToAfterClose"+sfx, func(t *testing.T, e *env) { errPacketWriteToAfterClose(e, nw) })
		add("PacketCloseTwice"+sfx, func(t *testing.T, e *env) { errPacketCloseTwice(e, nw) })
		add("PacketWriteToBadAddr"+sfx, func(t *testing.T, e *env) { errPacketWriteToBadAddr(e, nw) })
		add("ListenPacketInUse"+sfx, func(t *testing.T, e *env) { errListenPacketInUse(e, nw) })
		add("PacketWriteTooBig"+sfx, func(t *testing.T, e *env) { errPacketWriteTooBig(e, nw) })
	}
	add("PacketWriteToNowhereUnixgram", errPacketWriteToNowhere)
	add("DialRefusedUDP", errDialRefusedUDP)
	return cs
}

// title maps a network name to a case-name suffix.
func title(network string) string {
	switch network {
	case "tcp":
		return "TCP"
	case "udp":
		return "UDP"
	case "unix":
		return "Unix"
	case "unixgram":
		return "Unixgram"
	}
	return network
}

func errReadAfterClose(e *env, nw string) {
	buf := make([]byte, 8)
	for _, which := range e.roles() {
		e.sideBySide("Read after Close on the "+which+" conn", func(s *side) error {
			d, a, _ := s.pair(nw)
			c := pick(which, d, a)
			require.NoError(e.t, c.Close(), "%s: Close", s.name)
			_, err := c.Read(buf)
			return err
		}, net.ErrClosed)
	}
}

func errWriteAfterClose(e *env, nw string) {
	for _, which := range e.roles() {
		e.sideBySide("Write after Close on the "+which+" conn", func(s *side) error {
			d, a, _ := s.pair(nw)
			c := pick(which, d, a)
			require.NoError(e.t, c.Close(), "%s: Close", s.name)
			_, err := c.Write([]byte("x"))
			return err
		}, net.ErrClosed)
	}
}

func pick(which string, dialed, accepted net.Conn) net.Conn {
	if which == "dialed" {
		return dialed
	}
	return accepted
}

func errAcceptAfterClose(e *env, nw string) {
	e.sideBySide("Accept after Close", func(s *side) error {
		ln := s.listen(nw)
		require.NoError(e.t, ln.Close(), "%s: Close", s.name)
		return s.result(ln.Accept())
	}, net.ErrClosed)
}

func errCloseTwice(e *env, nw string) {
	for _, which := range e.roles() {
		e.sideBySide("second Close of the "+which+" conn", func(s *side) error {
			d, a, _ := s.pair(nw)
			c := pick(which, d, a)
			require.NoError(e.t, c.Close(), "%s: first Close", s.name)
			return c.Close()
		}, net.ErrClosed)
	}
	e.sideBySide("second Close of a listener", func(s *side) error {
		ln := s.listen(nw)
		require.NoError(e.t, ln.Close(), "%s: first Close", s.name)
		return ln.Close()
	}, net.ErrClosed)
}

func errReadEOF(e *env, nw string) {
	e.sideBySide("Read at EOF after the peer closed", func(s *side) error {
		c, peer, _ := s.conns(nw)
		_, err := peer.Write([]byte("last"))
		require.NoError(e.t, err, "%s: Write", s.name)
		require.NoError(e.t, peer.Close(), "%s: Close", s.name)
		require.NoError(e.t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		got, err := io.ReadAll(io.LimitReader(c, 4))
		require.NoError(e.t, err, "%s: read the data before EOF", s.name)
		require.Equal(e.t, "last", string(got), "%s: data before EOF", s.name)
		n, err := c.Read(make([]byte, 8))
		require.Zero(e.t, n, "%s: bytes read at EOF", s.name)
		return err
	}, io.EOF)
	e.sideBySide("Read at EOF after the peer's CloseWrite", func(s *side) error {
		c, peer, _ := s.conns(nw)
		require.NoError(e.t, peer.(closeWriter).CloseWrite(), "%s: CloseWrite", s.name)
		require.NoError(e.t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := c.Read(make([]byte, 8))
		return err
	}, io.EOF)
}

func errReadDeadline(e *env, nw string) {
	e.sideBySide("Read past its deadline", func(s *side) error {
		c, _, _ := s.conns(nw)
		require.NoError(e.t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, err := c.Read(make([]byte, 8))
		return err
	}, os.ErrDeadlineExceeded)
}

func errWriteDeadline(e *env, nw string) {
	e.sideBySide("Write past its deadline (peer not reading)", func(s *side) error {
		c, _, _ := s.conns(nw)
		require.NoError(e.t, c.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		return fillUntilError(c)
	}, os.ErrDeadlineExceeded)
}

// fillUntilError writes to c until a Write fails (bounded at 1 GiB so a
// network that never blocks cannot loop forever).
func fillUntilError(c net.Conn) error {
	buf := make([]byte, 256<<10)
	for total := 0; total < 1<<30; {
		n, err := c.Write(buf)
		total += n
		if err != nil {
			return err
		}
	}
	return errors.New("wrote 1 GiB to a peer that does not read without blocking")
}

// deadliner is the listener deadline setter of *net.TCPListener and
// *net.UnixListener.
type deadliner interface{ SetDeadline(time.Time) error }

func errAcceptDeadline(e *env, nw string) {
	e.sideBySide("Accept past its deadline", func(s *side) error {
		ln := s.listen(nw)
		dl, ok := ln.(deadliner)
		require.True(e.t, ok, "%s: listener %T has no SetDeadline(time.Time) error", s.name, ln)
		require.NoError(e.t, dl.SetDeadline(time.Now().Add(20*time.Millisecond)))
		return s.result(ln.Accept())
	}, os.ErrDeadlineExceeded)
}

type closeWriter interface{ CloseWrite() error }

type closeReader interface{ CloseRead() error }

func errWriteAfterCloseWrite(e *env, nw string) {
	e.sideBySide("Write after CloseWrite", func(s *side) error {
		c, _, _ := s.conns(nw)
		cw, ok := c.(closeWriter)
		require.True(e.t, ok, "%s: conn %T has no CloseWrite() error", s.name, c)
		require.NoError(e.t, cw.CloseWrite(), "%s: CloseWrite", s.name)
		_, err := c.Write([]byte("x"))
		return err
	}, syscall.EPIPE)
}

type syscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}

func errRawControlAfterClose(e *env, nw string) {
	e.sideBySide("RawConn.Control after Close", func(s *side) error {
		c, _, _ := s.conns(nw)
		sc, ok := c.(syscallConner)
		require.True(e.t, ok, "%s: conn %T has no SyscallConn", s.name, c)
		require.NoError(e.t, c.Close(), "%s: Close", s.name)
		rc, err := sc.SyscallConn()
		if err != nil {
			return err
		}
		return rc.Control(func(uintptr) {})
	}, net.ErrClosed)
	e.sideBySide("listener RawConn.Control after Close", func(s *side) error {
		ln := s.listen(nw)
		sc, ok := ln.(syscallConner)
		require.True(e.t, ok, "%s: listener %T has no SyscallConn", s.name, ln)
		require.NoError(e.t, ln.Close(), "%s: Close", s.name)
		rc, err := sc.SyscallConn()
		if err != nil {
			return err
		}
		return rc.Control(func(uintptr) {})
	}, net.ErrClosed)
}

func errDialRefused(e *env, nw string) {
	e.needsStream(nw)
	e.sideBySide("Dial to a closed port or socket", func(s *side) error {
		var addr string
		if isUnix(nw) {
			// A socket file with no listener behind it: made by the
			// reference so both sides dial the same kind of dead end.
			addr = s.path("dead")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
			require.NoError(e.t, err, "make a dead unix socket")
			ln.SetUnlinkOnClose(false)
			require.NoError(e.t, ln.Close())
		} else {
			ln := s.listen(nw)
			addr = ln.Addr().String()
			require.NoError(e.t, ln.Close(), "%s: Close", s.name)
		}
		return s.result(s.n.Dial(nw, addr))
	}, syscall.ECONNREFUSED)
}

func errListenInUse(e *env, nw string) {
	e.sideBySide("Listen on an address in use", func(s *side) error {
		ln := s.listen(nw)
		return s.result(s.n.Listen(nw, ln.Addr().String()))
	}, syscall.EADDRINUSE)
}

func errDialContext(e *env, nw string, expired bool) {
	e.needsStream(nw)
	what, want := "DialContext with a canceled context", context.Canceled
	if expired {
		what, want = "DialContext with an expired deadline", context.DeadlineExceeded
	}
	e.sideBySide(what, func(s *side) error {
		ln := s.listen(nw)
		var (
			ctx    context.Context
			cancel context.CancelFunc
		)
		if expired {
			ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		} else {
			ctx, cancel = context.WithCancel(context.Background())
			cancel()
		}
		defer cancel()
		return s.result(s.n.DialContext(ctx, nw, ln.Addr().String()))
	}, want)
}

func errDialUnixMissing(t *testing.T, e *env) {
	e.needsStream("unix")
	e.sideBySide("Dial a unix path that does not exist", func(s *side) error {
		return s.result(s.n.Dial("unix", s.path("missing")))
	}, syscall.ENOENT)
}

// badAddresses are malformed host:port strings; none needs a resolver.
var badAddresses = []string{"127.0.0.1", "nohost:abc", "[::1", "127.0.0.1:99999", "127.0.0.1:-1", "::1:80", "127.0.0.1:80:80", "[::1]80"}

func errDialBadAddress(t *testing.T, e *env) {
	e.needsDial()
	for _, nw := range []string{"tcp", "tcp4", "tcp6"} {
		for _, a := range append([]string{""}, badAddresses...) {
			e.sideBySide("Dial("+nw+", "+a+")", func(s *side) error {
				return s.result(s.n.Dial(nw, a))
			})
		}
	}
	e.sideBySide("DialContext(tcp, 127.0.0.1)", func(s *side) error {
		return s.result(s.n.DialContext(context.Background(), "tcp", "127.0.0.1"))
	})
}

func errListenBadAddress(t *testing.T, e *env) {
	for _, nw := range []string{"tcp", "tcp4"} {
		for _, a := range append([]string{"[::1]:0"}, badAddresses...) {
			if nw == "tcp" && a == "[::1]:0" {
				continue // a valid address there
			}
			e.sideBySide("Listen("+nw+", "+a+")", func(s *side) error {
				return s.result(s.n.Listen(nw, a))
			})
		}
	}
}

func errListenPacketBadAddress(t *testing.T, e *env) {
	e.needs(loop.CapPacket, loop.CapWatch)
	for _, a := range badAddresses {
		e.sideBySide("ListenPacket(udp, "+a+")", func(s *side) error {
			return s.result(s.n.ListenPacket("udp", a))
		})
	}
}

// unknownNetworkOps are operations on networks that do not exist or do
// not fit the call, grouped by the capability they need.
var unknownNetworkOps = map[string][]struct {
	what string
	op   func(n Network) (io.Closer, error)
}{
	"Dial": {
		{"Dial(tcp7)", func(n Network) (io.Closer, error) { return n.Dial("tcp7", "127.0.0.1:80") }},
		{"DialContext(tcp7)", func(n Network) (io.Closer, error) {
			return n.DialContext(context.Background(), "tcp7", "127.0.0.1:80")
		}},
		{"Dial(\"\")", func(n Network) (io.Closer, error) { return n.Dial("", "127.0.0.1:80") }},
	},
	"Listen": {
		{"Listen(tcp7)", func(n Network) (io.Closer, error) { return n.Listen("tcp7", "127.0.0.1:0") }},
		{"Listen(ip4:icmp)", func(n Network) (io.Closer, error) { return n.Listen("ip4:icmp", "127.0.0.1") }},
		{"Listen(udp)", func(n Network) (io.Closer, error) { return n.Listen("udp", "127.0.0.1:0") }},
	},
	"ListenPacket": {
		{"ListenPacket(tcp7)", func(n Network) (io.Closer, error) { return n.ListenPacket("tcp7", "127.0.0.1:0") }},
		{"ListenPacket(tcp)", func(n Network) (io.Closer, error) { return n.ListenPacket("tcp", "127.0.0.1:0") }},
	},
}

func errUnknownNetwork(e *env, kind string) {
	switch kind {
	case "Dial":
		e.needsDial()
	case "ListenPacket":
		e.needs(loop.CapPacket, loop.CapWatch)
	}
	for _, o := range unknownNetworkOps[kind] {
		e.sideBySide(o.what, func(s *side) error { return s.result(o.op(s.n)) })
	}
}

func errPacketReadDeadline(e *env, nw string) {
	e.needsPacket(nw)
	e.sideBySide("ReadFrom past its deadline", func(s *side) error {
		pc := s.listenPacket(nw)
		require.NoError(e.t, pc.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, _, err := pc.ReadFrom(make([]byte, 8))
		return err
	}, os.ErrDeadlineExceeded)
}

func errPacketReadAfterClose(e *env, nw string) {
	e.needsPacket(nw)
	e.sideBySide("ReadFrom after Close", func(s *side) error {
		pc := s.listenPacket(nw)
		require.NoError(e.t, pc.Close())
		_, _, err := pc.ReadFrom(make([]byte, 8))
		return err
	}, net.ErrClosed)
}

func errPacketWriteToAfterClose(e *env, nw string) {
	e.needsPacket(nw)
	e.sideBySide("WriteTo after Close", func(s *side) error {
		pc := s.listenPacket(nw)
		peer := s.listenPacket(nw)
		require.NoError(e.t, pc.Close())
		_, err := pc.WriteTo([]byte("x"), peer.LocalAddr())
		return err
	}, net.ErrClosed)
}

func errPacketCloseTwice(e *env, nw string) {
	e.needsPacket(nw)
	e.sideBySide("second Close", func(s *side) error {
		pc := s.listenPacket(nw)
		require.NoError(e.t, pc.Close())
		return pc.Close()
	}, net.ErrClosed)
}

func errPacketWriteToBadAddr(e *env, nw string) {
	e.needsPacket(nw)
	bad := []struct {
		what string
		addr net.Addr
	}{
		{"a nil address", nil},
		{"a *net.TCPAddr", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}},
		{"a *net.UDPAddr", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}},
		{"a *net.UnixAddr", &net.UnixAddr{Name: "/nonexistent/evh", Net: "unixgram"}},
	}
	for _, b := range bad {
		if (nw == "udp" && b.what == "a *net.UDPAddr") || (nw == "unixgram" && b.what == "a *net.UnixAddr") {
			continue // the right type: not an error of this kind
		}
		e.sideBySide("WriteTo "+b.what, func(s *side) error {
			pc := s.listenPacket(nw)
			_, err := pc.WriteTo([]byte("x"), b.addr)
			return err
		})
	}
}

func errListenPacketInUse(e *env, nw string) {
	e.needsPacket(nw)
	e.sideBySide("ListenPacket on an address in use", func(s *side) error {
		pc := s.listenPacket(nw)
		return s.result(s.n.ListenPacket(nw, pc.LocalAddr().String()))
	}, syscall.EADDRINUSE)
}

// setterCalls are the calls made on a closed conn; each must fail like
// net's.
var setterCalls = []struct {
	what    string
	tcpOnly bool
	call    func(c net.Conn) error
}{
	{"SetDeadline", false, func(c net.Conn) error { return c.SetDeadline(time.Now().Add(time.Hour)) }},
	{"SetReadDeadline", false, func(c net.Conn) error { return c.SetReadDeadline(time.Now().Add(time.Hour)) }},
	{"SetWriteDeadline", false, func(c net.Conn) error { return c.SetWriteDeadline(time.Now().Add(time.Hour)) }},
	{"CloseWrite", false, func(c net.Conn) error {
		return setter(c, "CloseWrite", func(s closeWriter) error { return s.CloseWrite() })
	}},
	{"CloseRead", false, func(c net.Conn) error {
		return setter(c, "CloseRead", func(s closeReader) error { return s.CloseRead() })
	}},
	{"SetReadBuffer", false, func(c net.Conn) error {
		return setter(c, "SetReadBuffer", func(s readBufferer) error { return s.SetReadBuffer(1 << 16) })
	}},
	{"SetWriteBuffer", false, func(c net.Conn) error {
		return setter(c, "SetWriteBuffer", func(s writeBufferer) error { return s.SetWriteBuffer(1 << 16) })
	}},
	{"SetNoDelay", true, func(c net.Conn) error {
		return setter(c, "SetNoDelay", func(s noDelayer) error { return s.SetNoDelay(false) })
	}},
	{"SetKeepAlive", true, func(c net.Conn) error {
		return setter(c, "SetKeepAlive", func(s keepAliver) error { return s.SetKeepAlive(true) })
	}},
	{"SetKeepAlivePeriod", true, func(c net.Conn) error {
		return setter(c, "SetKeepAlivePeriod", func(s keepAlivePerioder) error { return s.SetKeepAlivePeriod(time.Minute) })
	}},
	{"SetLinger", true, func(c net.Conn) error {
		return setter(c, "SetLinger", func(s lingerer) error { return s.SetLinger(1) })
	}},
}

func errSettersAfterClose(e *env, nw string) {
	for _, sc := range setterCalls {
		if sc.tcpOnly && isUnix(nw) {
			continue
		}
		e.sideBySide(sc.what+" after Close", func(s *side) error {
			c, _, _ := s.conns(nw)
			require.NoError(e.t, c.Close())
			return sc.call(c)
		}, net.ErrClosed)
	}
	e.sideBySide("listener SetDeadline after Close", func(s *side) error {
		ln := s.listen(nw)
		require.NoError(e.t, ln.Close())
		dl, ok := ln.(deadliner)
		require.True(e.t, ok, "%s: listener %T has no SetDeadline(time.Time) error", s.name, ln)
		return dl.SetDeadline(time.Now().Add(time.Hour))
	}, net.ErrClosed)
}

// errReadReset: the peer closes with data it never read, so the kernel
// resets the connection.
func errReadReset(e *env, nw string) {
	var want []error
	if !isUnix(nw) {
		want = append(want, syscall.ECONNRESET)
	}
	e.sideBySide("Read after the peer closed with unread data", func(s *side) error {
		c, peer, _ := s.conns(nw)
		require.NoError(e.t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := c.Write([]byte("never read"))
		require.NoError(e.t, err)
		// Wait until the bytes are queued at the peer, unread.
		waitQueued(e.t, peer)
		require.NoError(e.t, peer.Close())
		require.NoError(e.t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Read(make([]byte, 8))
		return err
	}, want...)
}

func errPacketWriteTooBig(e *env, nw string) {
	e.needsPacket(nw)
	size := 70000 // over UDP's 65507
	if isUnix(nw) {
		size = 8 << 20 // over any unixgram send buffer
	}
	e.sideBySide("WriteTo of an oversized datagram", func(s *side) error {
		pc, peer := s.listenPacket(nw), s.listenPacket(nw)
		_, err := pc.WriteTo(make([]byte, size), peer.LocalAddr())
		return err
	}, syscall.EMSGSIZE)
}

func errPacketWriteToNowhere(t *testing.T, e *env) {
	e.needsPacket("unixgram")
	e.sideBySide("WriteTo a unixgram path with no socket", func(s *side) error {
		pc := s.listenPacket("unixgram")
		_, err := pc.WriteTo([]byte("x"), &net.UnixAddr{Name: s.path("nobody"), Net: "unixgram"})
		return err
	}, syscall.ENOENT)
}

// errDialRefusedUDP: a connected UDP socket learns from ICMP that nobody
// listens, and its next Read says so.
func errDialRefusedUDP(t *testing.T, e *env) {
	e.needsPacket("udp")
	e.needsDial()
	e.sideBySide("Read on a dialed udp conn to a closed port", func(s *side) error {
		pc := s.listenPacket("udp")
		addr := pc.LocalAddr().String()
		require.NoError(e.t, pc.Close())
		c, err := s.n.Dial("udp", addr)
		require.NoError(e.t, err, "%s: Dial(udp)", s.name)
		s.e.track(c)
		_, err = c.Write([]byte("anyone?"))
		require.NoError(e.t, err, "%s: Write", s.name)
		require.NoError(e.t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Read(make([]byte, 8))
		return err
	}, syscall.ECONNREFUSED)
}
