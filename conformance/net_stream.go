package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// streamCases are the semantics of stream conns and listeners, run over
// tcp and unix.
func netStreamCases() []netCase {
	var cs []netCase
	for _, nw := range []string{"tcp", "unix"} {
		add := func(name string, run func(t *testing.T, e *env)) {
			cs = append(cs, netCase{area: nw, name: name, run: run})
		}
		add("Addrs", func(t *testing.T, e *env) { streamAddrs(t, e, nw) })
		if nw == "tcp" {
			add("AddrsIPv6", func(t *testing.T, e *env) { streamAddrs(t, e, "tcp6") })
		} else {
			add("AbstractAddrs", streamAbstract)
			add("CloseUnlinks", streamCloseUnlinks)
		}
		if nw == "tcp" {
			add("DialLocalhost", streamDialLocalhost)
		}
		add("AddrsAfterClose", func(t *testing.T, e *env) { streamAddrsAfterClose(t, e, nw) })
		add("ZeroLength", func(t *testing.T, e *env) { streamZeroLength(t, e, nw) })
		add("ConcurrentWritesAtomic", func(t *testing.T, e *env) { streamConcurrentWrites(t, e, nw) })
		add("ConcurrentReaders", func(t *testing.T, e *env) { streamConcurrentReaders(t, e, nw) })
		add("LargeWrite", func(t *testing.T, e *env) { streamLargeWrite(t, e, nw) })
		add("ConcurrentReadWrite", func(t *testing.T, e *env) { streamConcurrentRW(t, e, nw) })
		add("CloseWrite", func(t *testing.T, e *env) { streamCloseWrite(t, e, nw) })
		add("CloseRead", func(t *testing.T, e *env) { streamCloseRead(t, e, nw) })
		add("CloseReadKeepsReceived", func(t *testing.T, e *env) { streamCloseReadKeepsReceived(t, e, nw) })
		add("CloseReadPeerWrites", func(t *testing.T, e *env) { streamCloseReadPeerWrites(t, e, nw) })
		add("AfterPeerReset", func(t *testing.T, e *env) { streamAfterPeerReset(t, e, nw, false) })
		add("ReadAfterPeerReset", func(t *testing.T, e *env) { streamAfterPeerReset(t, e, nw, true) })
		add("SockOpts", func(t *testing.T, e *env) { streamSockOpts(t, e, nw) })
		add("SyscallConn", func(t *testing.T, e *env) { streamSyscallConn(t, e, nw) })
		add("RawReadWrite", func(t *testing.T, e *env) { streamRawReadWrite(t, e, nw) })
		add("ListenerCloseKeepsConns", func(t *testing.T, e *env) { streamListenerCloseKeepsConns(t, e, nw) })
	}
	return cs
}

// addrType is the concrete address type net uses for network.
func addrType(network string) string {
	switch {
	case strings.HasPrefix(network, "tcp"):
		return "*net.TCPAddr"
	case strings.HasPrefix(network, "udp"):
		return "*net.UDPAddr"
	}
	return "*net.UnixAddr"
}

func streamAddrs(t *testing.T, e *env, nw string) {
	if nw == "tcp6" {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("platform: no IPv6 loopback here (%v)", err)
		}
		_ = ln.Close()
	}
	std, got := e.sides()
	sd, sa, sl := std.pair(nw)
	gd, ga, gl := got.pair(nw)
	// Only the network's own sockets are checked: without dialing, the
	// dialed conn is the reference's.
	dialed := e.dials
	sameAddr(t, "listener Addr()", std, got, sl.Addr(), gl.Addr())
	if dialed {
		sameAddr(t, "dialed LocalAddr()", std, got, sd.LocalAddr(), gd.LocalAddr())
		sameAddr(t, "dialed RemoteAddr()", std, got, sd.RemoteAddr(), gd.RemoteAddr())
	}
	sameAddr(t, "accepted LocalAddr()", std, got, sa.LocalAddr(), ga.LocalAddr())
	sameAddr(t, "accepted RemoteAddr()", std, got, sa.RemoteAddr(), ga.RemoteAddr())

	want := addrType(nw)
	types := map[string]net.Addr{"listener Addr()": gl.Addr(), "accepted LocalAddr()": ga.LocalAddr()}
	if dialed {
		types["dialed LocalAddr()"], types["dialed RemoteAddr()"] = gd.LocalAddr(), gd.RemoteAddr()
	}
	for what, a := range types {
		assert.Equal(t, want, fmt.Sprintf("%T", a), "%s type", what)
	}
	// The two ends see each other.
	if dialed {
		assert.Equal(t, gl.Addr().String(), gd.RemoteAddr().String(), "dialed RemoteAddr is the listener's address")
	}
	assert.Equal(t, gl.Addr().String(), ga.LocalAddr().String(), "accepted LocalAddr is the listener's address")
	if !isUnix(nw) {
		assert.Equal(t, gd.LocalAddr().String(), ga.RemoteAddr().String(), "accepted RemoteAddr is the dialer's LocalAddr")
		if dialed {
			assert.NotZero(t, gd.LocalAddr().(*net.TCPAddr).Port, "dialed LocalAddr has a port")
		} else {
			ra, ok := ga.RemoteAddr().(*net.TCPAddr)
			if assert.True(t, ok, "accepted RemoteAddr is a *net.TCPAddr") {
				assert.NotZero(t, ra.Port, "accepted RemoteAddr has a port")
			}
		}
	}
}

// streamAbstract: Linux abstract unix sockets ("@name"), whose addresses
// net reports with the leading '@'.
func streamAbstract(t *testing.T, e *env) {
	if !hasAbstractUnix {
		t.Skip("platform: abstract unix socket addresses exist on Linux only")
	}
	std, got := e.sides()
	type obs struct{ ln, dl, dr, al, ar net.Addr }
	observe := func(s *side) obs {
		// The side's directory makes the abstract name unique, and norm
		// rewrites it like a path.
		ln, err := s.n.Listen("unix", "@"+s.path(s.nextName("abs")))
		require.NoError(t, err, "%s: Listen on an abstract unix address", s.name)
		s.e.track(ln)
		d, a := s.connect(ln)
		c, peer := e.underTest(d, a)
		require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		require.NoError(t, peer.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Write([]byte("abs"))
		require.NoError(t, err)
		buf := make([]byte, 3)
		_, err = io.ReadFull(peer, buf)
		require.NoError(t, err)
		require.Equal(t, "abs", string(buf))
		_, err = peer.Write([]byte("sba"))
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		require.Equal(t, "sba", string(buf))
		return obs{ln.Addr(), d.LocalAddr(), d.RemoteAddr(), a.LocalAddr(), a.RemoteAddr()}
	}
	ref, g := observe(std), observe(got)
	sameAddr(t, "listener Addr()", std, got, ref.ln, g.ln)
	if e.dials { // otherwise the dialed conn is the reference's
		sameAddr(t, "dialed LocalAddr()", std, got, ref.dl, g.dl)
		sameAddr(t, "dialed RemoteAddr()", std, got, ref.dr, g.dr)
	}
	sameAddr(t, "accepted LocalAddr()", std, got, ref.al, g.al)
	sameAddr(t, "accepted RemoteAddr()", std, got, ref.ar, g.ar)
}

func streamZeroLength(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	// Zero-length Read and Write return at once, with no data pending.
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	n, err := c.Read(nil)
	assert.Equal(t, 0, n, "Read(nil)")
	assert.NoError(t, err, "Read(nil) with no data pending returns 0, nil at once")
	n, err = c.Write(nil)
	assert.Equal(t, 0, n, "Write(nil)")
	assert.NoError(t, err, "Write(nil)")
	// A zero-length Write sends nothing: the next byte the peer reads is
	// the next real one.
	_, err = c.Write([]byte("z"))
	require.NoError(t, err)
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4)
	n, err = peer.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "z", string(buf[:n]))
}

func streamLargeWrite(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	const total = 8 << 20
	pt := newPattern(1)
	buf := make([]byte, total)
	pt.fill(0, buf)
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	require.NoError(t, peer.SetDeadline(time.Now().Add(30*time.Second)))
	rd := goErr(func() error { return pt.read(peer, total, 64<<10, true) })
	// One Write of 8 MiB: io.Writer requires n == len(p) or an error, so the
	// conn must keep writing through backpressure.
	n, err := c.Write(buf)
	require.NoError(t, err, "one large Write")
	require.Equal(t, total, n, "bytes written by one large Write")
	require.NoError(t, c.Close())
	require.NoError(t, waitFor(t, rd, 30*time.Second, "reader"), "peer reading the large Write")
}

func streamConcurrentRW(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	// Each end writes 4 MiB while reading 4 MiB from the other, each from
	// its own goroutine. If Read and Write of one conn were serialised
	// (or shared one wait), both writers would fill the buffers and stall.
	const total = 4 << 20
	for _, x := range []net.Conn{c, peer} {
		require.NoError(t, x.SetDeadline(time.Now().Add(30*time.Second)))
	}
	pd, pa := newPattern(2), newPattern(3)
	errs := []<-chan error{
		goErr(func() error { return pd.write(c, total, 100_000) }),
		goErr(func() error { return pa.write(peer, total, 70_000) }),
		goErr(func() error { return pa.read(c, total, 50_000, false) }),
		goErr(func() error { return pd.read(peer, total, 90_000, false) }),
	}
	for i, ch := range errs {
		require.NoError(t, waitFor(t, ch, 40*time.Second, "concurrent transfer"), "transfer %d", i)
	}
}

func streamCloseWrite(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	for _, x := range []net.Conn{c, peer} {
		require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
	}
	cw, ok := c.(closeWriter)
	require.True(t, ok, "conn %T has no CloseWrite() error", c)
	_, ok = peer.(closeWriter)
	require.True(t, ok, "peer conn %T has no CloseWrite() error", peer)
	_, err := c.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, cw.CloseWrite(), "CloseWrite")
	// The peer reads what was sent, then io.EOF...
	got, err := io.ReadAll(peer)
	require.NoError(t, err, "peer reading to EOF after CloseWrite")
	assert.Equal(t, "request", string(got))
	// ...and can still write back on the half-open conn.
	_, err = peer.Write([]byte("response"))
	require.NoError(t, err, "peer writing back after our CloseWrite")
	require.NoError(t, peer.(closeWriter).CloseWrite())
	got, err = io.ReadAll(c)
	require.NoError(t, err, "reading the response after our CloseWrite")
	assert.Equal(t, "response", string(got))
}

func streamCloseRead(t *testing.T, e *env, nw string) {
	for _, which := range e.roles() {
		e.sideBySide("Read after CloseRead ("+which+")", func(s *side) error {
			d, a, _ := s.pair(nw)
			c, peer := pick(which, d, a), pick(which, a, d)
			for _, c := range []net.Conn{d, a} {
				require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			}
			cr, ok := c.(closeReader)
			require.True(t, ok, "%s: %s conn %T has no CloseRead() error", s.name, which, c)
			require.NoError(t, cr.CloseRead(), "%s: CloseRead", s.name)
			// Writing still works after CloseRead.
			_, err := c.Write([]byte("still"))
			require.NoError(t, err, "%s: Write after CloseRead", s.name)
			buf := make([]byte, 5)
			_, err = io.ReadFull(peer, buf)
			require.NoError(t, err, "%s: peer reading after our CloseRead", s.name)
			require.Equal(t, "still", string(buf))
			n, err := c.Read(buf)
			require.Zero(t, n, "%s: Read after CloseRead", s.name)
			return err
		}, io.EOF)
	}
}

// sideSteps runs steps on a pair of each side and compares every step's
// outcome (nil included) with the standard library's, in order: a
// sequence whose later steps depend on the socket's state after the
// earlier ones.
func sideSteps(t *testing.T, e *env, what string, steps func(s *side) []string) {
	t.Helper()
	std, got := e.sides()
	want, have := steps(std), steps(got)
	require.Len(t, have, len(want), "%s: steps", what)
	for i := range want {
		assert.Equal(t, want[i], have[i], "%s: step %d differs from the standard library's", what, i)
	}
}

// outcome describes an operation's result for sideSteps.
func (s *side) outcome(op string, n int, data []byte, err error) string {
	r := fmt.Sprintf("%s: n=%d %q", op, n, data)
	if err == nil {
		return r + " ok"
	}
	return r + " " + strings.Join(describeErr(err, s.norm), "; ")
}

// streamCloseReadKeepsReceived: bytes that arrived before CloseRead are
// still read after it where net reads them (Linux's shutdown(SHUT_RD)
// discards nothing), then io.EOF.
func streamCloseReadKeepsReceived(t *testing.T, e *env, nw string) {
	for _, which := range e.roles() {
		sideSteps(t, e, "Read after CloseRead with bytes received ("+which+")", func(s *side) []string {
			d, a, _ := s.pair(nw)
			c, peer := pick(which, d, a), pick(which, a, d)
			for _, c := range []net.Conn{d, a} {
				require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			}
			_, err := peer.Write([]byte("ab"))
			require.NoError(t, err, "%s: peer Write", s.name)
			buf := make([]byte, 1)
			_, err = io.ReadFull(c, buf) // "ab" has arrived
			require.NoError(t, err, "%s: Read", s.name)
			var out []string
			err = c.(closeReader).CloseRead()
			out = append(out, s.outcome("CloseRead", 0, nil, err))
			for range 2 {
				n, err := c.Read(buf)
				out = append(out, s.outcome("Read", n, buf[:n], err))
			}
			return out
		})
	}
}

// streamCloseReadPeerWrites: after CloseRead the peer's writes fail with
// EPIPE on a unix socket (the kernel refuses them) and are taken on TCP.
func streamCloseReadPeerWrites(t *testing.T, e *env, nw string) {
	for _, which := range e.roles() {
		sideSteps(t, e, "peer's Write after CloseRead ("+which+")", func(s *side) []string {
			d, a, _ := s.pair(nw)
			c, peer := pick(which, d, a), pick(which, a, d)
			for _, c := range []net.Conn{d, a} {
				require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			}
			err := c.(closeReader).CloseRead()
			out := []string{s.outcome("CloseRead", 0, nil, err)}
			n, err := peer.Write([]byte("x"))
			out = append(out, s.outcome("peer Write", n, nil, err))
			n, err = c.Write([]byte("y"))
			return append(out, s.outcome("Write", n, nil, err))
		})
	}
}

// streamAfterPeerReset: the peer closes with bytes unread, which resets
// the connection (TCP sends an RST; a unix peer's close leaves the error
// pending). The kernel reports the reset once, to whichever call comes
// first — here a Write of no bytes, which net makes as a write(2) call —
// and then: a shut-down side (EPIPE), the closed state (CloseRead and
// CloseWrite fail with ENOTCONN on TCP), io.EOF. With peerWrote, the
// peer wrote first: a read returns those bytes, and leaves the reset to
// the next call.
func streamAfterPeerReset(t *testing.T, e *env, nw string, peerWrote bool) {
	for _, which := range e.roles() {
		sideSteps(t, e, "calls after the peer's reset ("+which+")", func(s *side) []string {
			d, a, _ := s.pair(nw)
			c, peer := pick(which, d, a), pick(which, a, d)
			for _, c := range []net.Conn{d, a} {
				require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			}
			var out []string
			if peerWrote {
				_, err := peer.Write([]byte("data"))
				require.NoError(t, err, "%s: peer Write", s.name)
			}
			_, err := c.Write([]byte("unread"))
			require.NoError(t, err, "%s: Write", s.name)
			// Once the peer's kernel has them, its close resets.
			rc, err := peer.(syscallConner).SyscallConn()
			require.NoError(t, err, "%s: peer SyscallConn", s.name)
			require.NoError(t, rc.Read(func(fd uintptr) bool {
				var b [1]byte
				n, _, _ := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				return n > 0
			}), "%s: peer waiting for the bytes", s.name)
			require.NoError(t, peer.Close(), "%s: peer Close", s.name)
			waitHangup(c, true, 2*time.Second)
			if peerWrote {
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				out = append(out, s.outcome("Read", n, buf[:n], err))
			}
			for range 2 {
				n, err := c.Write(nil)
				out = append(out, s.outcome("Write of no bytes", n, nil, err))
			}
			err = c.(closeReader).CloseRead()
			out = append(out, s.outcome("CloseRead", 0, nil, err))
			err = c.(closeWriter).CloseWrite()
			out = append(out, s.outcome("CloseWrite", 0, nil, err))
			buf := make([]byte, 8)
			n, err := c.Read(buf)
			return append(out, s.outcome("Read", n, buf[:n], err))
		})
	}
}

// sockopt is one socket option read back through RawConn.Control.
type sockopt struct {
	name       string
	level, opt int
	tcpOnly    bool
	buffer     bool // only compared once explicitly set (the kernel tunes it)
}

// sockopts are read back after each step; keepAliveOpts (the keep-alive
// timing options, named differently per platform) are added where the
// platform has them.
var sockopts = append([]sockopt{
	{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, true, false},
	{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, false, false},
	{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, false, true},
	{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, false, true},
}, keepAliveOpts...)

// readSockopts reads the options of c through its RawConn.
func readSockopts(t *testing.T, c net.Conn, tcp, buffers bool) map[string]int {
	t.Helper()
	sc, ok := c.(syscallConner)
	require.True(t, ok, "conn %T has no SyscallConn", c)
	rc, err := sc.SyscallConn()
	require.NoError(t, err, "SyscallConn")
	out := map[string]int{}
	var errs []error
	cerr := rc.Control(func(fd uintptr) {
		for _, o := range sockopts {
			if (o.tcpOnly && !tcp) || (o.buffer && !buffers) {
				continue
			}
			v, err := unix.GetsockoptInt(int(fd), o.level, o.opt)
			if err != nil {
				errs = append(errs, fmt.Errorf("getsockopt %s: %w", o.name, err))
			}
			out[o.name] = v
		}
		l, err := unix.GetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER)
		if err != nil {
			errs = append(errs, fmt.Errorf("getsockopt SO_LINGER: %w", err))
			return
		}
		out["SO_LINGER.onoff"], out["SO_LINGER.linger"] = int(l.Onoff), int(l.Linger)
	})
	require.NoError(t, cerr, "RawConn.Control")
	require.NoError(t, errors.Join(errs...))
	return out
}

type (
	noDelayer         interface{ SetNoDelay(bool) error }
	keepAliver        interface{ SetKeepAlive(bool) error }
	keepAlivePerioder interface {
		SetKeepAlivePeriod(time.Duration) error
	}
	lingerer       interface{ SetLinger(int) error }
	readBufferer   interface{ SetReadBuffer(int) error }
	writeBufferer  interface{ SetWriteBuffer(int) error }
	sockoptSetStep struct {
		what    string
		tcpOnly bool
		apply   func(c net.Conn) error
		check   map[string]int // values the reference must show (validates the step)
		buffers bool
	}
)

func setter[T any](c net.Conn, name string, f func(T) error) error {
	s, ok := c.(T)
	if !ok {
		return fmt.Errorf("conn %T has no %s", c, name)
	}
	return f(s)
}

var sockoptSteps = []sockoptSetStep{
	{what: "defaults"},
	{what: "SetNoDelay(false)", tcpOnly: true, check: map[string]int{"TCP_NODELAY": 0}, apply: func(c net.Conn) error {
		return setter(c, "SetNoDelay", func(s noDelayer) error { return s.SetNoDelay(false) })
	}},
	{what: "SetNoDelay(true)", tcpOnly: true, check: map[string]int{"TCP_NODELAY": 1}, apply: func(c net.Conn) error {
		return setter(c, "SetNoDelay", func(s noDelayer) error { return s.SetNoDelay(true) })
	}},
	{what: "SetKeepAlive(false)", tcpOnly: true, check: map[string]int{"SO_KEEPALIVE": 0}, apply: func(c net.Conn) error {
		return setter(c, "SetKeepAlive", func(s keepAliver) error { return s.SetKeepAlive(false) })
	}},
	{what: "SetKeepAlive(true)", tcpOnly: true, check: map[string]int{"SO_KEEPALIVE": 1}, apply: func(c net.Conn) error {
		return setter(c, "SetKeepAlive", func(s keepAliver) error { return s.SetKeepAlive(true) })
	}},
	{what: "SetKeepAlivePeriod(37s)", tcpOnly: true, check: keepIdleCheck(37), apply: func(c net.Conn) error {
		return setter(c, "SetKeepAlivePeriod", func(s keepAlivePerioder) error { return s.SetKeepAlivePeriod(37 * time.Second) })
	}},
	{what: "SetLinger(3)", tcpOnly: true, check: map[string]int{"SO_LINGER.onoff": 1, "SO_LINGER.linger": 3}, apply: func(c net.Conn) error {
		return setter(c, "SetLinger", func(s lingerer) error { return s.SetLinger(3) })
	}},
	{what: "SetLinger(0)", tcpOnly: true, check: map[string]int{"SO_LINGER.onoff": 1, "SO_LINGER.linger": 0}, apply: func(c net.Conn) error {
		return setter(c, "SetLinger", func(s lingerer) error { return s.SetLinger(0) })
	}},
	{what: "SetLinger(-1)", tcpOnly: true, check: map[string]int{"SO_LINGER.onoff": 0}, apply: func(c net.Conn) error {
		return setter(c, "SetLinger", func(s lingerer) error { return s.SetLinger(-1) })
	}},
	{what: "SetReadBuffer(40000)", buffers: true, apply: func(c net.Conn) error {
		return setter(c, "SetReadBuffer", func(s readBufferer) error { return s.SetReadBuffer(40000) })
	}},
	{what: "SetWriteBuffer(50000)", buffers: true, apply: func(c net.Conn) error {
		return setter(c, "SetWriteBuffer", func(s writeBufferer) error { return s.SetWriteBuffer(50000) })
	}},
}

func streamSockOpts(t *testing.T, e *env, nw string) {
	tcp := !isUnix(nw)
	std, got := e.sides()
	sd, sa, _ := std.pair(nw)
	gd, ga, _ := got.pair(nw)
	buffers := false
	for _, step := range sockoptSteps {
		if step.tcpOnly && !tcp {
			continue
		}
		buffers = buffers || step.buffers
		for _, which := range e.roles() {
			sc, gc := pick(which, sd, sa), pick(which, gd, ga)
			if step.apply != nil {
				require.NoError(t, step.apply(sc), "std: %s on the %s conn", step.what, which)
				assert.NoError(t, step.apply(gc), "%s on the %s conn", step.what, which)
			}
			ref := readSockopts(t, sc, tcp, buffers)
			for k, v := range step.check {
				require.Equal(t, v, ref[k], "std: %s after %s: the case is wrong", k, step.what)
			}
			assert.Equal(t, ref, readSockopts(t, gc, tcp, buffers),
				"socket options of the %s conn after %s differ from the standard library's", which, step.what)
		}
	}
}

// fdFacts are what Control must see on a socket's fd, compared with the
// reference's.
func fdFacts(t *testing.T, what string, v any, network string) map[string]any {
	t.Helper()
	sc, ok := v.(syscallConner)
	require.True(t, ok, "%s %T has no SyscallConn() (syscall.RawConn, error)", what, v)
	rc, err := sc.SyscallConn()
	require.NoError(t, err, "%s: SyscallConn", what)
	facts := map[string]any{}
	called := false
	require.NoError(t, rc.Control(func(fd uintptr) {
		called = true
		facts["fd>2"] = fd > 2
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		facts["F_GETFL err"] = fmt.Sprint(err)
		facts["O_NONBLOCK"] = fl&unix.O_NONBLOCK != 0
		fdfl, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
		facts["F_GETFD err"] = fmt.Sprint(err)
		facts["FD_CLOEXEC"] = fdfl&unix.FD_CLOEXEC != 0
		typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		facts["SO_TYPE"], facts["SO_TYPE err"] = typ, fmt.Sprint(err)
		acc, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		facts["SO_ACCEPTCONN"], facts["SO_ACCEPTCONN err"] = acc, fmt.Sprint(err)
		sa, err := unix.Getsockname(int(fd))
		facts["getsockname err"] = fmt.Sprint(err)
		facts["getsockname type"] = fmt.Sprintf("%T", sa)
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			facts["getsockname is LocalAddr"] = sa.Port == localPort(v)
		case *unix.SockaddrInet6:
			facts["getsockname is LocalAddr"] = sa.Port == localPort(v)
		case *unix.SockaddrUnix:
			facts["getsockname is LocalAddr"] = sa.Name == localName(v)
		}
	}), "%s: RawConn.Control", what)
	require.True(t, called, "%s: RawConn.Control did not call its function", what)
	return facts
}

func localPort(v any) int {
	switch v := v.(type) {
	case net.Conn:
		if a, ok := v.LocalAddr().(*net.TCPAddr); ok {
			return a.Port
		}
	case net.Listener:
		if a, ok := v.Addr().(*net.TCPAddr); ok {
			return a.Port
		}
	}
	return -1
}

func localName(v any) string {
	switch v := v.(type) {
	case net.Conn:
		return v.LocalAddr().String()
	case net.Listener:
		return v.Addr().String()
	}
	return "?"
}

func streamSyscallConn(t *testing.T, e *env, nw string) {
	std, got := e.sides()
	sd, sa, sl := std.pair(nw)
	gd, ga, gl := got.pair(nw)
	type sock struct {
		what     string
		ref, got any
	}
	socks := []sock{{"accepted conn", sa, ga}, {"listener", sl, gl}}
	if e.dials { // otherwise the dialed conn is the reference's
		socks = append([]sock{{"dialed conn", sd, gd}}, socks...)
	}
	for _, c := range socks {
		ref := fdFacts(t, "std "+c.what, c.ref, nw)
		require.Equal(t, true, ref["fd>2"], "std %s fd", c.what)
		assert.Equal(t, ref, fdFacts(t, c.what, c.got, nw), "what RawConn.Control sees on the %s's fd differs from the standard library's", c.what)
	}
}

func streamRawReadWrite(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	for _, x := range []net.Conn{c, peer} {
		require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
	}
	sc, ok := c.(syscallConner)
	require.True(t, ok, "conn %T has no SyscallConn", c)
	rc, err := sc.SyscallConn()
	require.NoError(t, err)

	// RawConn.Read waits for readability and calls f until it reports done.
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = peer.Write([]byte("ping"))
	}()
	buf := make([]byte, 16)
	var n, calls int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		calls++
		n, rerr = unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	})
	require.NoError(t, err, "RawConn.Read")
	require.NoError(t, rerr, "read(2) inside RawConn.Read")
	assert.Equal(t, "ping", string(buf[:n]))
	assert.Less(t, calls, 100, "RawConn.Read called f %d times for one readiness (spinning?)", calls)

	// RawConn.Write calls f while the fd is writable.
	err = rc.Write(func(fd uintptr) bool {
		_, werr := unix.Write(int(fd), []byte("pong"))
		return werr != unix.EAGAIN
	})
	require.NoError(t, err, "RawConn.Write")
	_, err = io.ReadFull(peer, buf[:4])
	require.NoError(t, err)
	assert.Equal(t, "pong", string(buf[:4]))

	// A read deadline bounds RawConn.Read too.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Millisecond)))
	err = rc.Read(func(fd uintptr) bool {
		_, rerr := unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	})
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "RawConn.Read past the read deadline")
}

func streamListenerCloseKeepsConns(t *testing.T, e *env, nw string) {
	d, a, ln := e.pair(nw)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, c := range []net.Conn{d, a} {
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	}
	_, err := d.Write([]byte("after"))
	require.NoError(t, err, "Write on an accepted conn after its listener closed")
	buf := make([]byte, 5)
	_, err = io.ReadFull(a, buf)
	require.NoError(t, err, "Read on an accepted conn after its listener closed")
	assert.Equal(t, "after", string(buf))
	// And the other way.
	_, err = a.Write([]byte("again"))
	require.NoError(t, err, "Write on an accepted conn after its listener closed")
	_, err = io.ReadFull(d, buf)
	require.NoError(t, err, "Read from an accepted conn after its listener closed")
	assert.Equal(t, "again", string(buf))
	// Nobody listens there any more (asked through the reference if the
	// network cannot dial).
	err = e.net().result(e.net().dialer().Dial(nw, addr))
	require.Error(t, err, "Dial to a closed listener's address")
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT),
		"Dial to a closed listener's address: %v", err)
}

// streamDialLocalhost: a host name resolved (from /etc/hosts) before the
// dial, with each resolved address tried in turn.
func streamDialLocalhost(t *testing.T, e *env) {
	e.needsStream("tcp")
	ln := e.net().listen("tcp")
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	want, err := net.Dial("tcp", "localhost:"+port)
	if err != nil {
		t.Skipf("platform: the standard library cannot dial localhost here (%v)", err)
	}
	_ = want.Close()
	wantRemote := want.RemoteAddr().String()
	acc := goErr(func() error {
		for range 3 {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			_ = c.Close()
		}
		return nil
	})
	c, err := e.n.Dial("tcp", "localhost:"+port)
	require.NoError(t, err, "Dial(tcp, localhost:port)")
	e.track(c)
	assert.Equal(t, wantRemote, c.RemoteAddr().String(), "RemoteAddr of a conn dialed by host name")
	c2, err := e.n.DialContext(context.Background(), "tcp4", "localhost:"+port)
	require.NoError(t, err, "DialContext(tcp4, localhost:port)")
	e.track(c2)
	require.NoError(t, waitFor(t, acc, 10*time.Second, "Accept"))
}

func streamAddrsAfterClose(t *testing.T, e *env, nw string) {
	std, got := e.sides()
	sd, sa, sl := std.pair(nw)
	gd, ga, gl := got.pair(nw)
	for _, c := range []io.Closer{sd, sa, sl, gd, ga, gl} {
		require.NoError(t, c.Close())
	}
	sameAddr(t, "listener Addr() after Close", std, got, sl.Addr(), gl.Addr())
	if e.dials { // otherwise the dialed conn is the reference's
		sameAddr(t, "dialed LocalAddr() after Close", std, got, sd.LocalAddr(), gd.LocalAddr())
		sameAddr(t, "dialed RemoteAddr() after Close", std, got, sd.RemoteAddr(), gd.RemoteAddr())
	}
	sameAddr(t, "accepted LocalAddr() after Close", std, got, sa.LocalAddr(), ga.LocalAddr())
	sameAddr(t, "accepted RemoteAddr() after Close", std, got, sa.RemoteAddr(), ga.RemoteAddr())
}

// streamConcurrentWrites: net holds a conn's write lock for a whole Write,
// so Writes from several goroutines never interleave their bytes.
func streamConcurrentWrites(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	const writers, records, size = 4, 64, 32 << 10
	for _, x := range []net.Conn{c, peer} {
		require.NoError(t, x.SetDeadline(time.Now().Add(30*time.Second)))
	}
	pt := newPattern(9)
	var wg sync.WaitGroup
	werrs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := make([]byte, size)
			for r := range records {
				id := int64(w*records + r)
				pt.fill(id*size, rec)
				binary.BigEndian.PutUint64(rec, uint64(id))
				if _, err := c.Write(rec); err != nil {
					werrs <- fmt.Errorf("writer %d record %d: %w", w, r, err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(werrs) }()
	seen := make(map[uint64]bool)
	rec, want := make([]byte, size), make([]byte, size)
	for range writers * records {
		_, err := io.ReadFull(peer, rec)
		require.NoError(t, err, "reading records")
		id := binary.BigEndian.Uint64(rec)
		require.Less(t, id, uint64(writers*records), "record header: bytes of concurrent Writes interleaved")
		require.False(t, seen[id], "record %d seen twice", id)
		seen[id] = true
		pt.fill(int64(id)*size, want)
		binary.BigEndian.PutUint64(want, id)
		require.True(t, bytes.Equal(want, rec), "record %d is not contiguous: bytes of concurrent Writes interleaved", id)
	}
	for err := range werrs {
		require.NoError(t, err)
	}
}

// streamConcurrentReaders: several goroutines reading one conn share its
// bytes: none lost, none read twice, all see EOF at the end.
func streamConcurrentReaders(t *testing.T, e *env, nw string) {
	// The readers share the accepted conn: the network's whether or not
	// it dials.
	d, a, _ := e.pair(nw)
	const readers, total = 4, 8 << 20
	for _, c := range []net.Conn{d, a} {
		require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	}
	pt := newPattern(10)
	buf := make([]byte, total)
	pt.fill(0, buf)
	var wantSum uint64
	for _, b := range buf {
		wantSum += uint64(b)
	}
	wr := goErr(func() error {
		if err := pt.write(d, total, 100_000); err != nil {
			return err
		}
		return d.(closeWriter).CloseWrite()
	})
	type res struct {
		n, sum uint64
		err    error
	}
	ch := make(chan res, readers)
	for range readers {
		go func() {
			var r res
			b := make([]byte, 7000)
			for {
				n, err := a.Read(b)
				r.n += uint64(n)
				for _, x := range b[:n] {
					r.sum += uint64(x)
				}
				if err != nil {
					if err != io.EOF {
						r.err = err
					}
					ch <- r
					return
				}
			}
		}()
	}
	var n, sum uint64
	for range readers {
		r := waitFor(t, ch, 40*time.Second, "concurrent readers")
		require.NoError(t, r.err, "a concurrent reader")
		n += r.n
		sum += r.sum
	}
	require.NoError(t, waitFor(t, wr, 10*time.Second, "writer"))
	assert.Equal(t, uint64(total), n, "bytes read by all readers together")
	assert.Equal(t, wantSum, sum, "sum of the bytes read by all readers together")
}

// streamCloseUnlinks: closing a unix listener removes the socket file it
// created, as net's does; its accepted conns keep working.
func streamCloseUnlinks(t *testing.T, e *env) {
	std, got := e.sides()
	observe := func(s *side) string {
		ln := s.listen("unix")
		path := ln.Addr().String()
		_, err := os.Stat(path)
		require.NoError(t, err, "%s: the socket file of a live listener", s.name)
		require.NoError(t, ln.Close())
		_, err = os.Stat(path)
		return fmt.Sprintf("after Close: os.Stat error is ErrNotExist: %v", errors.Is(err, os.ErrNotExist))
	}
	assert.Equal(t, observe(std), observe(got), "the socket file after the listener's Close")
}
