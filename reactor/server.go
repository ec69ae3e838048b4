package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/backoff"
	"github.com/evhub/evhub/loop"
)

// Balance is how a server spreads connections over its loops.
type Balance int

const (
	// RoundRobin: one acceptor (on the first loop) hands accepted
	// connections to the loops in turn. Exact, one hop per connection.
	RoundRobin Balance = iota
	// LeastConnections: the acceptor hands each connection to the loop
	// holding the fewest.
	LeastConnections
	// ReusePort: every loop has its own listening socket on the same
	// address (SO_REUSEPORT) and the kernel spreads connections by a hash
	// of their addresses: no hop, but uneven with few clients. TCP only.
	ReusePort
)

func (b Balance) String() string {
	switch b {
	case RoundRobin:
		return "round-robin"
	case LeastConnections:
		return "least-connections"
	case ReusePort:
		return "reuseport"
	}
	return fmt.Sprintf("Balance(%d)", int(b))
}

// Options configure a Server. The zero value is usable: every field has
// a default, given with it.
type Options struct {
	// Backend names the loop backend (loop.Open); ignored if NewLoop is
	// set. Empty means loop.Default() (with backends/all linked: the
	// fastest backend that opens on this machine).
	Backend string
	// NewLoop opens one new, not running loop; the server owns and closes
	// it. It lets a third-party loop carry a server.
	NewLoop func() (loop.Loop, error)
	// Loops is the number of loops (default runtime.GOMAXPROCS(0); 1 on a
	// loop that owns its sockets, which cannot share a port).
	Loops int
	// Balance spreads connections over the loops (default RoundRobin).
	Balance Balance
	// ReadTimeout and IdleTimeout are every connection's initial
	// timeouts (see Conn.SetReadTimeout, Conn.SetIdleTimeout); 0: none.
	ReadTimeout, IdleTimeout time.Duration
	// HighWater: a connection whose pending output exceeds it stops being
	// read (no OnData) until the output drains to LowWater, and AsyncWrite
	// refuses more. Defaults: 1 MiB and 256 KiB.
	HighWater, LowWater int
	// ReadBufferSize is the size of each loop's shared read buffer
	// (default 64 KiB): the most one read takes.
	ReadBufferSize int
	// KeepAlive and KeepAliveConfig set TCP keep-alive probes on accepted
	// and dialled connections exactly as net.ListenConfig's and
	// net.Dialer's fields of the same names do: by default probes start
	// after 15 s idle, every 15 s, 9 of them; a KeepAlive > 0 sets the
	// idle time; KeepAliveConfig with Enable set wins over KeepAlive; a
	// negative KeepAlive without it leaves keep-alive off. Enrolled
	// sockets keep the keep-alive settings they have.
	KeepAlive       time.Duration
	KeepAliveConfig net.KeepAliveConfig
	// NoCompletion makes the server use readiness (Watch, then read and
	// write system calls) on a loop that offers completion I/O
	// (loop.Completer), which it uses by default: see the package
	// documentation for what each costs.
	NoCompletion bool
}

// Server runs a Handler on N loops. Its methods are safe for concurrent
// use.
type Server struct {
	h   Handler
	opt Options
	els []*eventLoop

	ka net.KeepAliveConfig // what accepted connections get

	rr   atomic.Uint64
	live atomic.Int64 // connections assigned to a loop and not yet closed

	mu        sync.Mutex
	closed    bool
	listeners []*listener
	shutOnce  sync.Once
	shutErr   error // the grace period's
	loopErr   error // the loops'
	stream    bool  // the loops own their sockets (StreamServer)
}

// New starts a server: it opens the loops and runs each on a goroutine of
// its own. It serves nothing until Listen, Dial or Enrol.
func New(h Handler, opt Options) (*Server, error) {
	if h == nil {
		return nil, errors.New("reactor: New with a nil Handler")
	}
	if opt.NewLoop == nil {
		name := opt.Backend
		if name == "" {
			if name = loop.Default(); name == "" {
				return nil, errors.New("reactor: no loop backend registered (import github.com/evhub/evhub/backends/all, or one backend)")
			}
		}
		opt.NewLoop = func() (loop.Loop, error) { return loop.Open(name) }
	}
	if opt.Loops < 0 {
		return nil, fmt.Errorf("reactor: Options.Loops %d is negative", opt.Loops)
	}
	if opt.Balance < RoundRobin || opt.Balance > ReusePort {
		return nil, fmt.Errorf("reactor: unknown %v", opt.Balance)
	}
	if opt.ReadBufferSize == 0 {
		opt.ReadBufferSize = 64 << 10
	}
	if opt.HighWater == 0 {
		opt.HighWater = 1 << 20
	}
	if opt.LowWater == 0 {
		opt.LowWater = min(256<<10, opt.HighWater/4)
	}
	if opt.ReadBufferSize < 0 || opt.HighWater < 0 || opt.LowWater < 0 || opt.LowWater > opt.HighWater {
		return nil, fmt.Errorf("reactor: bad sizes: ReadBufferSize %d, HighWater %d, LowWater %d (need LowWater <= HighWater, none negative)", opt.ReadBufferSize, opt.HighWater, opt.LowWater)
	}
	if opt.ReadTimeout < 0 || opt.IdleTimeout < 0 {
		return nil, fmt.Errorf("reactor: negative timeout (ReadTimeout %v, IdleTimeout %v)", opt.ReadTimeout, opt.IdleTimeout)
	}
	s := &Server{h: h, ka: opt.KeepAliveConfig}
	if !s.ka.Enable && opt.KeepAlive >= 0 {
		s.ka = net.KeepAliveConfig{Enable: true, Idle: opt.KeepAlive}
	}
	first, err := opt.NewLoop()
	if err != nil {
		return nil, fmt.Errorf("reactor: open a loop: %w", err)
	}
	if first == nil {
		return nil, errors.New("reactor: Options.NewLoop returned a nil loop")
	}
	_, isStream := first.(loop.StreamServer)
	s.stream = isStream && !loop.Supports(first, loop.CapWatch)
	if opt.Loops == 0 {
		opt.Loops = runtime.GOMAXPROCS(0)
		if s.stream {
			opt.Loops = 1
		}
	}
	s.opt = opt
	loops := []loop.Loop{first}
	for len(loops) < opt.Loops {
		l, err := opt.NewLoop()
		if err == nil && l == nil {
			err = errors.New("nil loop")
		}
		if err != nil {
			for _, l := range loops {
				_ = l.Close()
			}
			return nil, fmt.Errorf("reactor: open loop %d: %w", len(loops), err)
		}
		loops = append(loops, l)
	}
	for i, l := range loops {
		if sp, ok := l.(loop.Spinner); ok {
			// The callbacks answer I/O with I/O and seldom wake a
			// goroutine: polls after each batch would be system calls
			// for nothing.
			sp.SetSpin(0)
		}
		el := newEventLoop(s, i, l)
		s.els = append(s.els, el)
		go func() {
			defer close(el.done)
			el.runErr = l.Run()
		}()
	}
	if t, ok := h.(Ticker); ok {
		el := s.els[0]
		var tick func()
		tick = func() {
			var d time.Duration
			el.protect(nil, func() { d = t.OnTick(time.Now()) })
			el.flushDirty()
			if d > 0 {
				el.l.Timer(d, 0, tick)
			}
		}
		_ = el.enqueue(task{kind: taskCall, call: tick})
	}
	return s, nil
}

// Backend is the name of the server's loop backend.
func (s *Server) Backend() string { return s.els[0].l.Name() }

// Loops is the number of loops.
func (s *Server) Loops() int { return len(s.els) }

// ConnsPerLoop reports how many connections each loop holds.
func (s *Server) ConnsPerLoop() []int {
	out := make([]int, len(s.els))
	for i, el := range s.els {
		out[i] = int(el.nconn.Load())
	}
	return out
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return int(s.live.Load()) }

// pick chooses the loop for a new connection and counts it there.
func (s *Server) pick(from *eventLoop) *eventLoop {
	var el *eventLoop
	switch {
	case len(s.els) == 1:
		el = s.els[0]
	case s.opt.Balance == LeastConnections:
		el = s.els[0]
		best := el.nconn.Load()
		for _, e := range s.els[1:] {
			if n := e.nconn.Load(); n < best {
				el, best = e, n
			}
		}
	case s.opt.Balance == ReusePort && from != nil:
		el = from
	default:
		el = s.els[int(s.rr.Add(1)-1)%len(s.els)]
	}
	el.nconn.Add(1)
	s.live.Add(1)
	return el
}

// hand gives an accepted or enrolled fd to a loop.
func (s *Server) hand(from *eventLoop, fd int) error {
	el := s.pick(from)
	c := el.newConn(fd, 0)
	if el == from {
		el.open(c)
		return nil
	}
	if err := el.enqueue(task{kind: taskOpen, c: c}); err != nil {
		el.nconn.Add(-1)
		s.live.Add(-1)
		_ = unix.Close(fd)
		return err
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Listen serves connections accepted on a stream address ("tcp",
// "tcp4", "tcp6", "unix") and returns the bound address. Errors are
// net.Listen's (*net.OpError). A server may listen on several addresses.
func (s *Server) Listen(network, address string) (net.Addr, error) {
	opErr := func(addr net.Addr, err error) error {
		return &net.OpError{Op: "listen", Net: network, Addr: addr, Err: err}
	}
	if s.isClosed() {
		return nil, opErr(nil, ErrServerClosed)
	}
	if s.stream {
		if len(s.els) > 1 {
			// The library accepts by itself on one loop; the others would
			// sit idle.
			return nil, opErr(nil, fmt.Errorf("reactor: %d loops: %w", len(s.els), loop.Unsupported(s.els[0].l, loop.CapWatch)))
		}
		return s.listenStream(network, address)
	}
	if !loop.Supports(s.els[0].l, loop.CapWatch) {
		return nil, opErr(nil, loop.Unsupported(s.els[0].l, loop.CapWatch))
	}
	ls, err := resolveListen(network, address)
	if err != nil {
		return nil, opErr(nil, err)
	}
	if network == "unix" && s.opt.Balance == ReusePort {
		return nil, opErr(ls.addr, fmt.Errorf("reactor: %v balancing needs TCP: %w", ReusePort, errors.ErrUnsupported))
	}
	var els []*eventLoop
	if s.opt.Balance == ReusePort {
		els = s.els
	} else {
		els = s.els[:1]
	}
	var fds []int
	var bound net.Addr
	port := 0
	fail := func(err error) (net.Addr, error) {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		if ls.path != "" && len(fds) > 0 {
			_ = unix.Unlink(ls.path)
		}
		return nil, opErr(ls.addr, err)
	}
	for range els {
		fd, err := listenFD(ls, s.opt.Balance == ReusePort, port)
		if err != nil {
			return fail(err)
		}
		fds = append(fds, fd)
		if bound == nil {
			sa, err := unix.Getsockname(fd)
			if err != nil {
				return fail(os.NewSyscallError("getsockname", err))
			}
			bound, port = sockAddr(sa), sockPort(sa)
			if network == "unix" {
				bound = &net.UnixAddr{Name: ls.addr.(*net.UnixAddr).Name, Net: "unix"}
			}
		}
	}
	var lns []*listener
	for i, el := range els {
		ln := &listener{s: s, el: el, fd: fds[i], path: ls.path}
		var werr error
		if err := el.call(func() { werr = ln.start() }); err != nil {
			werr = err
		}
		if werr != nil {
			for _, ln := range lns {
				_ = ln.el.call(ln.stop)
			}
			for _, fd := range fds[i:] {
				_ = unix.Close(fd)
			}
			return nil, opErr(ls.addr, werr)
		}
		lns = append(lns, ln)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		for _, ln := range lns {
			_ = ln.el.call(ln.stop)
		}
		return nil, opErr(ls.addr, ErrServerClosed)
	}
	s.listeners = append(s.listeners, lns...)
	s.mu.Unlock()
	return bound, nil
}

// listener accepts on one listening fd from a loop's watcher.
type listener struct {
	s      *Server
	el     *eventLoop
	fd     int
	path   string
	w      loop.IOWatcher
	paused loop.Timer
	delay  backoff.Accept // pause while no descriptor is free
	stop1  bool
	sl     loop.StreamListener // a StreamServer's listener instead of fd
}

func (ln *listener) start() error {
	w, err := ln.el.l.Watch(ln.fd, loop.Readable, ln.onAccept)
	quiet(w)
	if err != nil {
		return err
	}
	ln.w = w
	return nil
}

func (ln *listener) onAccept(loop.Events) {
	for range 64 {
		fd, err := acceptFn(ln.fd)
		switch {
		case err == nil:
			ln.delay.Reset()
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		case isTemporaryAccept(err):
			// Out of fds: stop accepting for a while (5 ms, doubling up
			// to 1 s while it lasts, as the hub's listeners do) instead
			// of spinning on a ready listener.
			_ = ln.w.Modify(0)
			ln.paused = ln.el.l.Timer(ln.delay.Next(), 0, func() {
				ln.paused = nil
				if !ln.stop1 {
					_ = ln.w.Modify(loop.Readable)
				}
			})
			return
		default:
			return
		}
		if ln.path == "" {
			setNoDelay(fd)
			setKeepAlive(fd, ln.s.ka)
		}
		_ = ln.s.hand(ln.el, fd)
	}
}

// stop deregisters and closes the listening socket; loop goroutine.
func (ln *listener) stop() {
	if ln.stop1 {
		return
	}
	ln.stop1 = true
	if ln.paused != nil {
		ln.paused.Stop()
	}
	if ln.w != nil {
		_ = ln.w.Stop()
	}
	_ = unix.Close(ln.fd)
	if ln.path != "" {
		_ = unix.Unlink(ln.path)
	}
}

// Dial connects to address (net.Dialer semantics: names, timeout) from
// the calling goroutine and puts the connection on one of the server's
// loops; OnOpen runs there. Errors are net's. It blocks: from a handler,
// call it on a goroutine of your own.
func (s *Server) Dial(network, address string, timeout time.Duration) (*Conn, error) {
	return s.DialContext(context.Background(), network, address, timeout)
}

// DialContext is Dial with a context for the connect (cancellation and
// deadline, as net.Dialer.DialContext).
func (s *Server) DialContext(ctx context.Context, network, address string, timeout time.Duration) (*Conn, error) {
	if s.isClosed() {
		return nil, &net.OpError{Op: "dial", Net: network, Err: ErrServerClosed}
	}
	if s.stream {
		return nil, &net.OpError{Op: "dial", Net: network, Err: loop.Unsupported(s.els[0].l, loop.CapDial)}
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: s.opt.KeepAlive, KeepAliveConfig: s.opt.KeepAliveConfig}
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return s.Enrol(nc)
}

// Enrol puts an already-connected stream socket on one of the server's
// loops: it takes a duplicate of nc's fd and closes nc. Bytes nc had
// buffered in user space (a bufio.Reader of yours) are not carried: enrol
// before reading. OnOpen runs on the loop; the Conn may be given to
// AsyncWrite and Post at once.
func (s *Server) Enrol(nc net.Conn) (*Conn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("reactor: Enrol of a %T, which has no SyscallConn: %w", nc, errors.ErrUnsupported)
	}
	fd, err := dupConn(sc)
	if err != nil {
		return nil, fmt.Errorf("reactor: Enrol: %w", err)
	}
	_ = nc.Close()
	return s.EnrolFD(fd)
}

// EnrolFD is Enrol for a connected stream socket given by its fd, which
// the server owns from then on (it closes it on error too).
func (s *Server) EnrolFD(fd int) (*Conn, error) {
	if s.isClosed() {
		_ = unix.Close(fd)
		return nil, ErrServerClosed
	}
	if s.stream {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("reactor: EnrolFD: %w", loop.Unsupported(s.els[0].l, loop.CapWatch))
	}
	if err := checkStream(fd); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		if _, isUnix := sa.(*unix.SockaddrUnix); !isUnix {
			setNoDelay(fd)
		}
	}
	el := s.pick(nil)
	c := el.newConn(fd, 0)
	if err := el.enqueue(task{kind: taskOpen, c: c}); err != nil {
		el.nconn.Add(-1)
		s.live.Add(-1)
		_ = unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// Shutdown stops the server gracefully: it stops accepting, lets open
// connections finish until they have all closed or ctx ends, then closes
// what remains (OnClose reason ErrServerClosed), stops and closes the
// loops. It returns ctx's error if connections had to be closed, nil
// otherwise; later calls return the first one's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { s.shutErr, s.loopErr = s.shutdown(ctx) })
	return errors.Join(s.shutErr, s.loopErr)
}

// Close stops the server at once: Shutdown with no grace period. It
// reports only errors of the loops (a connection it closes is not one),
// and is idempotent.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	return s.loopErr
}

func (s *Server) shutdown(ctx context.Context) (graceErr, loopErr error) {
	s.mu.Lock()
	s.closed = true
	lns := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	for _, ln := range lns {
		if ln.sl == nil {
			_ = ln.el.call(ln.stop)
		} else {
			ln.closeStream()
		}
	}
	var err error
	if ctx.Err() == nil && s.live.Load() > 0 {
		t := time.NewTicker(5 * time.Millisecond)
	wait:
		for s.live.Load() > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-t.C:
			}
		}
		t.Stop()
	}
	if s.live.Load() > 0 {
		err = ctx.Err()
	}
	var errs []error
	for _, el := range s.els {
		el.mu.Lock()
		el.closed = true
		el.mu.Unlock()
		l := el.l
		if perr := l.Post(func() { el.shutdown(ErrServerClosed); l.Stop() }); perr != nil {
			l.Stop()
		}
		<-el.done
		if el.runErr != nil {
			errs = append(errs, el.runErr)
		}
		if cerr := l.Close(); cerr != nil {
			errs = append(errs, cerr)
		}
		el.closeKept()
	}
	return err, errors.Join(errs...)
}
