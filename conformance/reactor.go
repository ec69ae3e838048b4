package conformance

import (
	"bytes"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/reactor"
)

// TestReactor runs the reactor area of the suite: package reactor's
// callback-level servers on loops that open returns (one fresh loop per
// call; a server opens as many as it has loops). Cases are subtests named
// "Area/Case"; areas: conn (echo, the input view across partial reads,
// addresses, half-close, close from either side mid-write, panics, bad
// input), write (vectored and partial writes, 32 MiB to a slow reader with
// the heap bounded, asynchronous writes from 100 goroutines, backpressure),
// timeout (read and idle), loops (balance, shutdown, 5,000-connection
// churn), dial (Dial and Enrol) and handover (to a hub net.Conn mid-stream).
// Each case must leave no goroutine and no descriptor behind. A case that a
// capability the loop lacks rules out is "n/a", as in the rest of the
// suite.
//
//	func TestReactor(t *testing.T) {
//		conformance.TestReactor(t, func() (loop.Loop, error) { return mybackend.New() })
//	}
func TestReactor(t *testing.T, open func() (loop.Loop, error)) {
	warmUpNet(t)
	cases := reactorCases()
	sort.SliceStable(cases, func(i, j int) bool { return areaRank(cases[i].area) < areaRank(cases[j].area) })
	for _, area := range reactorAreas {
		t.Run(area, func(t *testing.T) {
			for _, c := range cases {
				if c.area != area {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					fds0 := openFDs()
					leakOpts := goleak.IgnoreCurrent()
					t.Cleanup(func() { checkNoLeaks(t, fds0, leakOpts) })
					e := &rEnv{t: t, open: open}
					dog := time.AfterFunc(caseTimeout, func() {
						t.Errorf("case still running after %v: closing its sockets and servers", caseTimeout)
						e.closeAll()
					})
					t.Cleanup(func() { dog.Stop() })
					t.Cleanup(e.closeAll)
					c.run(t, e)
				})
			}
		})
	}
}

var reactorAreas = []string{"conn", "write", "timeout", "loops", "dial", "handover"}

func areaRank(a string) int {
	for i, x := range reactorAreas {
		if x == a {
			return i
		}
	}
	return len(reactorAreas)
}

type reactorCase struct {
	area, name string
	run        func(t *testing.T, e *rEnv)
}

func reactorCases() []reactorCase {
	var cs []reactorCase
	cs = append(cs, reactorConnCases()...)
	cs = append(cs, reactorWriteCases()...)
	cs = append(cs, reactorLoopCases()...)
	cs = append(cs, reactorClientCases()...)
	cs = append(cs, reactorExtraCases()...)
	return cs
}

// rEnv is one case's world: the servers and client sockets it opened, all
// closed when it ends.
type rEnv struct {
	t    *testing.T
	open func() (loop.Loop, error)

	mu      sync.Mutex
	servers []*reactor.Server
	conns   []net.Conn
	closers []func()
}

func (e *rEnv) closeAll() {
	e.mu.Lock()
	cs, ss, fs := e.conns, e.servers, e.closers
	e.conns, e.servers, e.closers = nil, nil, nil
	e.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	for _, s := range ss {
		if err := s.Close(); err != nil {
			e.t.Errorf("closing a reactor server: %v", err)
		}
	}
	for _, f := range fs {
		f()
	}
}

// server starts a reactor server on the loops under test, one loop unless
// opt says otherwise, listening on 127.0.0.1.
func (e *rEnv) server(h reactor.Handler, opt reactor.Options) (*reactor.Server, string) {
	e.t.Helper()
	s := e.newServer(h, opt)
	a, err := s.Listen("tcp", "127.0.0.1:0")
	require.NoError(e.t, err, "Listen")
	return s, a.String()
}

func (e *rEnv) newServer(h reactor.Handler, opt reactor.Options) *reactor.Server {
	e.t.Helper()
	opt.NewLoop = e.open
	if opt.Loops == 0 {
		opt.Loops = 1
	}
	s, err := reactor.New(h, opt)
	require.NoError(e.t, err, "reactor.New")
	e.mu.Lock()
	e.servers = append(e.servers, s)
	e.mu.Unlock()
	return s
}

// firstLoop opens one loop of the kind under test for a capability probe
// and closes it with the case.
func (e *rEnv) probeLoop() loop.Loop {
	e.t.Helper()
	l, err := e.open()
	require.NoError(e.t, err, "open a loop")
	e.mu.Lock()
	e.closers = append(e.closers, func() { _ = l.Close() })
	e.mu.Unlock()
	return l
}

func (e *rEnv) dial(addr string) net.Conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(e.t, err, "dial %s", addr)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	e.track(c)
	return c
}

func (e *rEnv) track(c net.Conn) {
	e.mu.Lock()
	e.conns = append(e.conns, c)
	e.mu.Unlock()
}

// rEcho is the handler most cases use: whatever arrives is written back.
var rEcho = reactor.Funcs{Data: func(c *reactor.Conn) {
	b, _ := c.Next(-1)
	_, _ = c.Write(b)
}}

// closeRec records OnClose reasons.
type closeRec struct {
	mu      sync.Mutex
	reasons []error
	ch      chan error
}

func newCloseRec() *closeRec { return &closeRec{ch: make(chan error, 10000)} }

func (r *closeRec) onClose(_ *reactor.Conn, err error) {
	r.mu.Lock()
	r.reasons = append(r.reasons, err)
	r.mu.Unlock()
	r.ch <- err
}

func (r *closeRec) next(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-r.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("no OnClose within 10s: %s", what)
		return nil
	}
}

// rPattern returns n bytes of a position-dependent pattern, so a lost,
// repeated or reordered byte shows.
func rPattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		x := off + i
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	return b
}

func rCheckPattern(t *testing.T, off int, got []byte) {
	t.Helper()
	want := rPattern(off, len(got))
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("byte %d: got %#x, want %#x", off+i, got[i], want[i])
			}
		}
	}
}

// needWatchServer skips the case as n/a when the loop lacks Watch (evio),
// after checking that what the case needs fails with ErrUnsupported.
func (e *rEnv) needWatch(probe func() error) {
	e.t.Helper()
	requireUnsupported(e.t, e.probeLoop(), loop.CapWatch, probe)
}
