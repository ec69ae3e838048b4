package conformance

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/loop"
)

// Network is what the socket half of the suite drives: a hub, or the
// standard library.
type Network interface {
	// Listen is net.Listen on this network.
	Listen(network, address string) (net.Listener, error)
	// Dial is net.Dial on this network.
	Dial(network, address string) (net.Conn, error)
	// DialContext is (*net.Dialer).DialContext with a zero Dialer.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	// ListenPacket is net.ListenPacket on this network.
	ListenPacket(network, address string) (net.PacketConn, error)
}

// StdNetwork is the standard library as a Network (the reference every
// case compares against).
var StdNetwork Network = stdNetwork{}

type stdNetwork struct{}

func (stdNetwork) Listen(network, address string) (net.Listener, error) {
	return net.Listen(network, address)
}

func (stdNetwork) Dial(network, address string) (net.Conn, error) {
	return net.Dial(network, address)
}

func (stdNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (stdNetwork) ListenPacket(network, address string) (net.PacketConn, error) {
	return net.ListenPacket(network, address)
}

// caseTimeout bounds one case: past it the watchdog fails the case and
// closes every socket the case opened, so that a hung operation returns.
const caseTimeout = 45 * time.Second

// netCase is one socket case: subtest Area/Name.
type netCase struct {
	area string
	name string
	run  func(t *testing.T, e *env)
}

// netAreas is the order in which the areas run.
var netAreas = []string{"tcp", "unix", "udp", "unixgram", "errors", "deadline", "close", "stress", "http", "tls", "nettest"}

// netCases lists every socket case.
func netCases() []netCase {
	var cs []netCase
	cs = append(cs, netStreamCases()...)
	cs = append(cs, netPacketCases()...)
	cs = append(cs, netErrorCases()...)
	cs = append(cs, netDeadlineCases()...)
	cs = append(cs, netCloseCases()...)
	cs = append(cs, netTeardownCases()...)
	cs = append(cs, netStressCases()...)
	cs = append(cs, netFDReuseCases()...)
	cs = append(cs, netHTTPCases()...)
	cs = append(cs, netTLSCases()...)
	cs = append(cs, netNettestCases()...)
	return cs
}

// NetResult is the outcome of one socket case of [TestNetworkResults].
type NetResult struct {
	// Name is the case's subtest name, "Area/Case".
	Name string
	// Skipped: the case did not run to its end because it was skipped,
	// either n/a (NA says why) or for a platform fact (NA is empty).
	Skipped bool
	// Failed: the case failed (a case may fail and then skip).
	Failed bool
	// NA is the capability, declared missing by the network, that made
	// the case n/a; empty if the case was not n/a.
	NA loop.Capability
}

// TestNetwork runs every socket case against the networks that open
// returns: one fresh Network per case, closed by the returned func (nil for
// the standard library). It is the socket half of the suite: it proves
// that a Network's net.Conn, net.Listener and net.PacketConn behave exactly
// like the standard library's. Run on StdNetwork itself every case passes,
// which is what proves the cases right.
//
// Cases are subtests named "Area/Case". Areas: tcp and unix (stream
// semantics: addresses, half-close, socket options, SyscallConn, concurrent
// use), udp and unixgram (datagram boundaries, truncation, addresses,
// deadlines), errors (every failing operation performed side by side on
// StdNetwork and on the Network under test, comparing the concrete error
// types along the Unwrap chain, *net.OpError fields, errors.Is answers for
// net.ErrClosed, os.ErrDeadlineExceeded, io.EOF, the errnos and the context
// errors, Timeout, and the message with ports and socket directories
// normalised), deadline, close (Close and the peer's close release every
// blocked call), stress (5,000 connect/close cycles, 32 MiB to a slow
// reader with the heap bounded, fd reuse, Close racing I/O), http
// (net/http keep-alive), tls (handshake and 1 MiB each way) and nettest
// (golang.org/x/net/nettest.TestConn over tcp and unix).
//
// Each case is bounded in time and must leave no goroutine (goleak) and no
// file descriptor (counted in /proc/self/fd, or /dev/fd off Linux) behind.
// A case ruled out by a capability the Network declares missing (through
// loop.Limited: loop.CapDial, loop.CapPacket, loop.CapWatch)
// still performs the operation, requires an error wrapping
// errors.ErrUnsupported, and is skipped with a message that begins
// "n/a: ". The only other skips name a platform fact (no IPv6 loopback, no
// abstract unix addresses).
//
// A Network that can listen but not dial (it declares loop.CapDial or
// loop.CapWatch missing, as a hub on evio does) is still tested on every
// stream case that is not about dialing: the conns are dialed through the
// standard library, and the conn the Network accepted is the one under
// test (read, written, closed, given deadlines, compared), with the
// reference's dialed conn as its peer. Side-by-side comparisons then swap
// the roles on the reference too: they compare the two accepted conns.
// Only the cases about dialing (and, without loop.CapPacket, the packet
// cases) are n/a.
//
// Cases run one at a time (file-descriptor and goroutine accounting is
// per process), so TestNetwork must not run in parallel with other tests
// of the same binary. Run it under -race.
func TestNetwork(t *testing.T, open func() (n Network, close func() error, err error)) {
	TestNetworkResults(t, open)
}

// TestNetworkResults is [TestNetwork], returning the outcome of every case
// in the order they ran, so that a caller can check which cases ran and
// which were n/a.
func TestNetworkResults(t *testing.T, open func() (n Network, close func() error, err error)) []NetResult {
	warmUpNet(t)
	cases := netCases()
	var (
		mu  sync.Mutex
		out []NetResult
	)
	for _, area := range netAreas {
		t.Run(area, func(t *testing.T) {
			for _, c := range cases {
				if c.area != area {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					runNetCase(t, open, c, func(r NetResult) {
						mu.Lock()
						defer mu.Unlock()
						out = append(out, r)
					})
				})
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}

// warmUpNet makes the runtime open its poller (and anything else the net
// package opens once per process) before any case counts descriptors.
func warmUpNet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "warm-up listen")
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err, "warm-up dial")
	_ = c.Close()
	_ = ln.Close()
}

func runNetCase(t *testing.T, open func() (Network, func() error, error), c netCase, record func(NetResult)) {
	// Registered first, so it runs last: after the leak check, which may
	// still fail the case.
	var e *env
	t.Cleanup(func() {
		r := NetResult{Name: c.area + "/" + c.name, Skipped: t.Skipped(), Failed: t.Failed()}
		if e != nil && r.Skipped {
			r.NA = e.na
		}
		record(r)
	})
	fds0 := openFDs()
	leakOpts := goleak.IgnoreCurrent()
	// Cleanups run last-registered first: the leak check runs after the
	// network is closed, which runs after the case's sockets are closed.
	t.Cleanup(func() { checkNoLeaks(t, fds0, leakOpts) })

	n, closeNet, err := open()
	require.NoError(t, err, "open the network under test")
	require.NotNil(t, n, "open returned a nil Network")
	if closeNet != nil {
		t.Cleanup(func() {
			if err := closeNet(); err != nil {
				t.Errorf("closing the network under test: %v", err)
			}
		})
	}
	e = newEnv(t, n)
	dog := time.AfterFunc(caseTimeout, func() {
		t.Errorf("case still running after %v: closing its sockets", caseTimeout)
		e.closeAll()
	})
	t.Cleanup(func() { dog.Stop() })
	c.run(t, e)
}

// checkNoLeaks fails t if descriptors beyond fds0 stay open or goroutines
// started during the case are still running. Closes may complete
// asynchronously (a loop goroutine closing an fd), so both are polled for a
// bounded time.
func checkNoLeaks(t *testing.T, fds0 map[string]string, opts goleak.Option) {
	t.Helper()
	var extra []string
	deadline := time.Now().Add(3 * time.Second)
	for {
		extra = extra[:0]
		for fd, target := range openFDs() {
			if _, ok := fds0[fd]; !ok {
				extra = append(extra, fd+" -> "+target)
			}
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		t.Errorf("file descriptors left open by the case: %s", strings.Join(extra, ", "))
	}
	// A descriptor the process had before the case must still be there: a
	// network that closes an fd twice closes, the second time, whatever
	// the kernel gave that number to meanwhile. (Pipes are let go: net's
	// splice pipe pool is drained by finalizers at any time.)
	now := openFDs()
	var stray []string
	for fd, was := range fds0 {
		if strings.HasPrefix(was, "pipe:") {
			continue
		}
		if is, ok := now[fd]; !ok {
			stray = append(stray, fmt.Sprintf("%s (was %s) is closed", fd, was))
		} else if is != was {
			stray = append(stray, fmt.Sprintf("%s was %s and is now %s", fd, was, is))
		}
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		t.Errorf("descriptors the case did not open were closed during it (a double close, or the late close of a descriptor an earlier case left open): %s", strings.Join(stray, ", "))
	}
	// goleak.Find retries for about a second by itself; some goroutines
	// linger longer by design (net/http's closeWriteAndWait sleeps 500ms).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if goleak.Find(opts) == nil {
			return
		}
	}
	goleak.VerifyNone(t, opts)
}

// fdDir lists the process's descriptors: /proc/self/fd on Linux, /dev/fd
// on the BSDs and Darwin.
var fdDir = func() string {
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		return "/proc/self/fd"
	}
	return "/dev/fd"
}()

// openFDs returns the process's open descriptors (number -> target where
// the platform tells), without the one used to read the directory.
func openFDs() map[string]string {
	out := make(map[string]string)
	d, err := os.Open(fdDir)
	if err != nil {
		return out
	}
	defer d.Close()
	self := fmt.Sprint(d.Fd())
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		if name == self {
			continue
		}
		target, err := os.Readlink(fdDir + "/" + name)
		if err != nil {
			continue // closed between the listing and now: not open
		}
		out[name] = target
	}
	return out
}

// env is what a case works with: the network under test, the reference,
// a short directory for unix sockets, and a record of everything to close.
type env struct {
	t   *testing.T
	n   Network
	dir string

	std, got *side // made on first use by sides

	// dials: the network under test dials (it has loop.CapDial and
	// loop.CapWatch). Without it, conns are dialed through the reference
	// and the accepted conn is the one under test (see conns).
	dials bool
	// na is the capability that made the case n/a, for NetResult.
	na loop.Capability

	mu      sync.Mutex
	closers []io.Closer
}

func newEnv(t *testing.T, n Network) *env {
	e := &env{t: t, n: n, dir: shortTempDir(t),
		dials: loop.Supports(n, loop.CapDial) && loop.Supports(n, loop.CapWatch)}
	t.Cleanup(e.closeAll)
	return e
}

// maxSockDir keeps dir + "/" + a short name under the 108-byte sun_path
// limit (104 on BSDs) with room to spare.
const maxSockDir = 80

// shortTempDir returns a directory for unix socket paths, short enough for
// sun_path, removed when the test ends.
func shortTempDir(t *testing.T) string {
	dir := t.TempDir()
	if len(dir) <= maxSockDir {
		return dir
	}
	dir, err := os.MkdirTemp("", "evh")
	require.NoError(t, err, "make a short directory for unix sockets")
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// track records c to be closed when the case ends (or its watchdog fires).
func (e *env) track(c io.Closer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closers = append(e.closers, c)
}

// closeAll closes everything tracked, newest first. Errors are ignored:
// most of these were already closed by the case itself.
func (e *env) closeAll() {
	e.mu.Lock()
	cs := e.closers
	e.closers = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		_ = cs[i].Close()
	}
}

// closerFunc adapts a func to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// side is one of the two networks of a side-by-side comparison, with its
// own socket directory.
type side struct {
	e    *env
	n    Network
	name string // "std" or "net"
	dir  string
	seq  int
	// roles names the host:port of each socket the side opened ("L1",
	// "D2", ...), so that messages compare with Source and Addr in their
	// places rather than every port blurred to one word.
	roles map[string]string
}

// sides returns the reference side and the side under test (the same two
// for the whole case, so socket names stay unique and match between them).
func (e *env) sides() (std, got *side) {
	if e.std == nil {
		mk := func(n Network, name string) *side {
			dir := filepath.Join(e.dir, name[:1])
			require.NoError(e.t, os.MkdirAll(dir, 0o700), "make the %s socket directory", name)
			return &side{e: e, n: n, name: name, dir: dir}
		}
		e.std, e.got = mk(StdNetwork, "std"), mk(e.n, "net")
	}
	return e.std, e.got
}

// net returns the side under test, for cases that need no reference.
func (e *env) net() *side {
	_, got := e.sides()
	return got
}

// nextName returns a socket name unique on this side; both sides of a
// comparison produce the same sequence.
func (s *side) nextName(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d", prefix, s.seq)
}

// path returns a unix socket path on this side.
func (s *side) path(name string) string { return filepath.Join(s.dir, name) }

// norm rewrites what legitimately differs between the two sides of a
// comparison (ports, this side's socket directory) to fixed words.
func (s *side) norm(str string) string {
	str = strings.ReplaceAll(str, s.dir, "DIR")
	return portRE.ReplaceAllStringFunc(str, func(hp string) string {
		host, _, _ := net.SplitHostPort(hp)
		if r, ok := s.roles[hp]; ok {
			return net.JoinHostPort(host, r)
		}
		return net.JoinHostPort(host, "PORT")
	})
}

// role records the role name of a (tcp or udp) address for norm.
func (s *side) role(a net.Addr, prefix string) {
	if isNil(a) {
		return
	}
	switch a.(type) {
	case *net.TCPAddr, *net.UDPAddr:
		if s.roles == nil {
			s.roles = map[string]string{}
		}
		s.seq++
		s.roles[a.String()] = fmt.Sprintf("%s%d", prefix, s.seq)
	}
}

// addr is the address for a listener on network: loopback with an
// ephemeral port, or a fresh path in this side's directory.
func (s *side) addr(network, name string) string {
	switch network {
	case "unix", "unixgram", "unixpacket":
		return s.path(name)
	case "tcp6", "udp6":
		return "[::1]:0"
	}
	return "127.0.0.1:0"
}

// listen opens a tracked listener on this side.
func (s *side) listen(network string) net.Listener {
	s.e.t.Helper()
	ln, err := s.n.Listen(network, s.addr(network, s.nextName("l")))
	require.NoError(s.e.t, err, "%s: Listen(%q)", s.name, network)
	s.e.track(ln)
	s.role(ln.Addr(), "L")
	return ln
}

// listenPacket opens a tracked packet conn on this side.
func (s *side) listenPacket(network string) net.PacketConn {
	s.e.t.Helper()
	pc, err := s.n.ListenPacket(network, s.addr(network, s.nextName("p")))
	require.NoError(s.e.t, err, "%s: ListenPacket(%q)", s.name, network)
	s.e.track(pc)
	s.role(pc.LocalAddr(), "P")
	return pc
}

// pair connects a dialed conn to an accepted one through a fresh listener,
// all tracked. The dial goes through dialer: this side's network, or the
// reference if the network under test cannot dial.
func (s *side) pair(network string) (dialed, accepted net.Conn, ln net.Listener) {
	s.e.t.Helper()
	ln = s.listen(network)
	dialed, accepted = s.connect(ln)
	return dialed, accepted, ln
}

// conns is pair with the ends named by role: c is the conn under test and
// peer the other end. On a network that dials, c is the dialed conn and
// peer the accepted one (both the network's); on a network that only
// listens, c is the conn the network accepted and peer the reference's
// dialed conn. The reference side of a comparison swaps the same way, so
// the two sides compare conns in the same role.
func (s *side) conns(network string) (c, peer net.Conn, ln net.Listener) {
	s.e.t.Helper()
	d, a, ln := s.pair(network)
	c, peer = s.e.underTest(d, a)
	return c, peer, ln
}

// underTest orders a dialed and an accepted conn as (conn under test,
// peer): see conns.
func (e *env) underTest(dialed, accepted net.Conn) (c, peer net.Conn) {
	if e.dials {
		return dialed, accepted
	}
	return accepted, dialed
}

// roles are the ends of a pair that belong to the network under test:
// "dialed" and "accepted", or only "accepted" if it cannot dial. Cases
// that check each end of a pair loop over them (pick chooses the conn).
func (e *env) roles() []string {
	if e.dials {
		return []string{"dialed", "accepted"}
	}
	return []string{"accepted"}
}

// dialer is the Network through which this side dials to make pairs: its
// own, or the reference if the network under test cannot dial.
func (s *side) dialer() Network {
	if s.e.dials {
		return s.n
	}
	return StdNetwork
}

// connect dials ln through this side's dialer and accepts the conn.
func (s *side) connect(ln net.Listener) (dialed, accepted net.Conn) {
	s.e.t.Helper()
	return s.connectVia(s.dialer(), ln, nil)
}

// connectUT is connect with the ends named by role, as conns names them.
func (s *side) connectUT(ln net.Listener) (c, peer net.Conn) {
	s.e.t.Helper()
	return s.e.underTest(s.connect(ln))
}

// connectVia dials ln through dialer and accepts the conn. With between
// nil, Accept is already waiting when Dial starts; otherwise Dial completes
// first (the kernel queues the connection), then between runs, then
// Accept: a case uses that to free a descriptor for the accepted conn.
func (s *side) connectVia(dialer Network, ln net.Listener, between func()) (dialed, accepted net.Conn) {
	t := s.e.t
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	accept := func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}
	if between == nil {
		go accept()
	}
	dialed, err := dialer.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		_ = ln.Close() // unblocks the Accept above
		if between == nil {
			<-ch
		}
		require.NoError(t, err, "%s: Dial(%q, %q)", s.name, ln.Addr().Network(), ln.Addr().String())
	}
	s.e.track(dialed)
	s.role(dialed.LocalAddr(), "D")
	if between != nil {
		between()
		go accept()
	}
	select {
	case r := <-ch:
		require.NoError(t, r.err, "%s: Accept", s.name)
		s.e.track(r.c)
		return dialed, r.c
	case <-time.After(10 * time.Second):
		_ = ln.Close()
		if r := <-ch; !isNil(r.c) {
			_ = r.c.Close()
		}
		t.Fatalf("%s: Accept did not return within 10s of a successful Dial", s.name)
	}
	return nil, nil
}

// pair is side.pair on the network under test.
func (e *env) pair(network string) (dialed, accepted net.Conn, ln net.Listener) {
	e.t.Helper()
	return e.net().pair(network)
}

// conns is side.conns on the network under test.
func (e *env) conns(network string) (c, peer net.Conn, ln net.Listener) {
	e.t.Helper()
	return e.net().conns(network)
}

// Capability requirements: the n/a protocol.

// needs lists the capabilities a case uses: for each one the network
// declares missing, requireUnsupported (the suite's n/a protocol) performs
// the operation that needs it, requires errors.ErrUnsupported, and skips.
func (e *env) needs(caps ...loop.Capability) {
	e.t.Helper()
	for _, c := range caps {
		e.requireUnsupported(c, func() error { return e.probe(c) })
	}
}

// requireUnsupported is the suite's requireUnsupported on the network
// under test, recording the capability for NetResult first.
func (e *env) requireUnsupported(c loop.Capability, probe func() error) {
	e.t.Helper()
	if !loop.Supports(e.n, c) {
		e.na = c
	}
	requireUnsupported(e.t, e.n, c, probe)
}

// probe performs the operation that capability c enables and returns its
// error (closing whatever it opened if it unexpectedly succeeded).
func (e *env) probe(c loop.Capability) error {
	s := e.net()
	switch c {
	case loop.CapPacket:
		return s.result(e.n.ListenPacket("udp", "127.0.0.1:0"))
	}
	// CapDial, CapWatch: dial out to a live reference listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("probe listener: %w", err)
	}
	defer ln.Close()
	return s.result(e.n.Dial("tcp", ln.Addr().String()))
}

// needsDial: the case dials out through the network.
func (e *env) needsDial() { e.t.Helper(); e.needs(loop.CapDial, loop.CapWatch) }

// needsStream: the case is about dialing on network (tcp or unix) through
// the network under test, and listens there too.
func (e *env) needsStream(network string) {
	e.t.Helper()
	e.needsDial()
}

// needsPacket: the case opens packet conns on network (udp or unixgram).
func (e *env) needsPacket(network string) {
	e.t.Helper()
	e.needs(loop.CapPacket, loop.CapWatch)
}

func isUnix(network string) bool { return strings.HasPrefix(network, "unix") }

// waitFor waits up to d for ch and fails the case if nothing arrives.
func waitFor[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
	var zero T
	return zero
}

// goErr runs fn in a goroutine and delivers its error.
func goErr(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// result takes the (value, error) of an operation performed for its error:
// with an error, net returns a nil interface, and so must the network under
// test (a typed nil inside net.Conn breaks every `c != nil` check); a value
// returned without error is closed. It returns err.
func (s *side) result(v any, err error) error {
	s.e.t.Helper()
	if v == nil {
		return err
	}
	if err != nil {
		s.e.t.Errorf("%s: returned %T (not a nil interface) together with the error %q", s.name, v, err)
	}
	if isNil(v) {
		return err
	}
	if c, ok := v.(io.Closer); ok {
		_ = c.Close()
	}
	return err
}

// isNil reports whether v is a nil interface or holds a nil pointer (which
// a broken network may return beside an error; calling Close on it would
// panic).
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
