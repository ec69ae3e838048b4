//go:build linux

package evio

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

const (
	// chunkSize bounds the bytes a stream hands evio's own output buffer
	// when the kernel's is full (evio copies them once more): the only
	// user-space output buffering per connection.
	chunkSize = 64 << 10
	// inflightMax bounds the bytes read by evio but not yet handed to the
	// StreamHandler (the loop goroutine may be slow or not running): past
	// it the stream stops reading by itself until the loop catches up.
	inflightMax = 1 << 20
	// shutdownWait bounds how long Close waits for an evio server to stop.
	shutdownWait = 10 * time.Second
)

// ServeStream listens on network ("tcp", "tcp4", "tcp6" or "unix") with an
// evio server of its own, and delivers its connections to h on the loop
// goroutine (loop.StreamServer). It is safe from any goroutine. See the
// package documentation for how evio's defects are neutralised.
func (l *Loop) ServeStream(network, address string, h loop.StreamHandler) (loop.StreamListener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if h == nil {
		return nil, opErr(errors.New("evio: ServeStream with a nil handler"))
	}
	if l.Closed() {
		return nil, opErr(fmt.Errorf("evio: serve: %w", loop.ErrClosed))
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, opErr(&loop.UnsupportedError{Backend: Name, Capability: loop.Capability(network),
			Reason: "evio serves tcp and unix stream sockets only"})
	}
	// evio parses "network://address?options" itself.
	if strings.Contains(address, "://") || strings.ContainsRune(address, '?') {
		return nil, opErr(&loop.UnsupportedError{Backend: Name, Capability: "address",
			Reason: fmt.Sprintf("evio cannot listen on %q: it reads \"://\" and \"?\" as its own syntax", address)})
	}
	if network == "unix" {
		if err := checkUnixPath(address); err != nil {
			return nil, err
		}
	}
	sv, err := l.startServer(network, address, h)
	if err != nil {
		return nil, err
	}
	return &listener{sv: sv}, nil
}

// checkUnixPath refuses a unix address evio would destroy: evio.Serve
// calls os.RemoveAll on the path before listening (a file, or a whole
// directory tree, already there would be deleted), where net.Listen fails
// with EADDRINUSE. For an existing path the error is net's own.
func checkUnixPath(address string) error {
	if address == "" {
		return nil
	}
	if address[0] == '@' {
		// An abstract address, which evio's RemoveAll takes for a file
		// name in the working directory.
		if _, err := os.Lstat(address); err == nil {
			return &net.OpError{Op: "listen", Net: "unix", Addr: &net.UnixAddr{Name: address, Net: "unix"},
				Err: &loop.UnsupportedError{Backend: Name, Capability: "address",
					Reason: fmt.Sprintf("evio would delete the file %q in the working directory before listening on the abstract address", address)}}
		}
		return nil
	}
	if _, err := os.Lstat(address); err != nil {
		return nil
	}
	// Something is there: let net say what it says about it.
	ln, err := net.Listen("unix", address)
	if err != nil {
		return err
	}
	_ = ln.Close() // it vanished meanwhile; net's Close unlinks its own file
	return nil
}

// server is one evio.Serve: a listener, its connections, and a private
// "kick" connection that lets other goroutines run code on the evio
// goroutine.
type server struct {
	l       *Loop
	h       loop.StreamHandler
	network string

	addr      net.Addr
	unlink    string // unix path to remove on Close, as net does
	lnFDs     []int  // evio's fds of the listening socket (found at Serving)
	lnMu      sync.Mutex
	lnDup     int // our own handle on the listening socket, -1 once closed
	lnClosing atomic.Bool

	kickDir, kickPath string
	kickMu            sync.RWMutex
	kickFD            int // our end of the kick connection, -1 once closed
	kickPending       atomic.Bool

	cmdMu           sync.Mutex
	cmds, cmdsSpare []func()

	stopReq  atomic.Bool
	started  chan error
	ready    chan struct{} // the kick connection is open
	done     chan struct{} // evio.Serve returned
	serveErr error

	// Evio goroutine only.
	epfd        int
	kickConn    evio.Conn
	streams     map[*stream]struct{}
	holders     map[*stream]struct{} // streams whose output evio holds
	dirty       map[*stream]struct{} // masks evio may have re-armed
	opening     []*stream
	checkNeeded bool
	readied     bool // a callback readied goroutines: yield
	oneP        bool // GOMAXPROCS was 1 when the server started
	lnClosed    bool
	acceptOn    bool          // the listening fds are armed on evio's poller
	backoff     time.Duration // EMFILE retry delay

	// evio's final closes run in a private descriptor table (isolate).
	serveGoid   string
	kickLnFDs   []int
	wfd         int
	isolated    bool
	sharedClose []int

	acceptWanted atomic.Bool // the scheduler's wish (SetAcceptPaused)
	retryMu      sync.Mutex
	retry        *time.Timer
}

func (l *Loop) startServer(network, address string, h loop.StreamHandler) (*server, error) {
	sv := &server{
		l: l, h: h, network: network,
		lnDup: -1, kickFD: -1, epfd: -1, wfd: -1,
		started: make(chan error, 1),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		streams: map[*stream]struct{}{},
		holders: map[*stream]struct{}{},
		dirty:   map[*stream]struct{}{},
		oneP:    runtime.GOMAXPROCS(0) == 1,
	}
	base := os.TempDir()
	if len(base) > 80 {
		base = "/tmp" // sun_path holds 108 bytes
	}
	dir, err := os.MkdirTemp(base, "evhub-evio-")
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("evio: kick socket directory: %w", err)}
	}
	sv.kickDir, sv.kickPath = dir, filepath.Join(dir, "k")

	events := evio.Events{
		NumLoops: 1, // callbacks of one server are serial
		Serving:  sv.serving,
		Opened:   sv.opened,
		Data:     sv.data,
		Closed:   sv.closed,
		PreWrite: sv.preWrite,
	}
	go sv.serve(events, network+"://"+address, "unix://"+sv.kickPath)

	select {
	case err = <-sv.started:
	case <-sv.done:
		err = sv.serveErr
		if err == nil {
			err = errors.New("evio: Serve returned before serving")
		}
	}
	if err != nil {
		<-sv.done
		_ = os.RemoveAll(sv.kickDir)
		var oe *net.OpError
		if errors.As(err, &oe) {
			return nil, err // net.Listen's own error
		}
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if err := sv.connectKick(); err != nil {
		sv.stopReq.Store(true)
		_ = sv.waitDone()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sv.addr, Err: err}
	}
	l.mu.Lock()
	if l.Closed() {
		l.mu.Unlock()
		_ = sv.shutdown()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sv.addr, Err: fmt.Errorf("evio: serve: %w", loop.ErrClosed)}
	}
	l.servers[sv] = struct{}{}
	l.mu.Unlock()
	return sv, nil
}

// serve runs evio.Serve on this goroutine (evio runs its loop on another)
// and cleans up after it returns. The goroutine keeps its thread locked
// from the start, and never the process's main thread, so that isolate can
// give that thread a private descriptor table at the end: the main thread
// holds the table /proc/self/fd shows, and Go parks a locked main thread
// for ever instead of ending it.
func (sv *server) serve(events evio.Events, addrs ...string) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// While this goroutine holds the main thread, the new one must
		// lock another.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			sv.serveLocked(events, addrs)
		}()
		<-locked
		runtime.UnlockOSThread()
		return
	}
	sv.serveLocked(events, addrs)
}

func (sv *server) serveLocked(events evio.Events, addrs []string) {
	sv.serveGoid = goid()
	err := func() (err error) {
		// evio panics when it cannot create its poller (EMFILE).
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("evio: serve panicked: %v", r)
			}
		}()
		return evio.Serve(events, addrs...)
	}()
	if sv.isolated {
		// This thread's descriptor table is private (isolate): the rest
		// must run where closes reach the process's table. The thread
		// ends with this goroutine, which never unlocks it.
		go sv.finish(err)
		return
	}
	runtime.UnlockOSThread()
	sv.finish(err)
}

// finish closes what evio left open, releases the server's own
// descriptors and reports an unrequested stop.
func (sv *server) finish(err error) {
	defer close(sv.done)
	sv.serveErr = err
	select {
	case sv.started <- err: // never got to Serving
	default:
	}
	for _, fd := range sv.sharedClose {
		_ = unix.Close(fd)
	}
	sv.sharedClose = nil
	sv.kickMu.Lock()
	if sv.kickFD >= 0 {
		_ = unix.Close(sv.kickFD)
		sv.kickFD = -1
	}
	sv.kickMu.Unlock()
	sv.lnMu.Lock()
	if sv.lnDup >= 0 {
		_ = unix.Close(sv.lnDup)
		sv.lnDup = -1
	}
	sv.lnMu.Unlock()
	sv.retryMu.Lock()
	if sv.retry != nil {
		sv.retry.Stop()
	}
	sv.retryMu.Unlock()
	_ = os.RemoveAll(sv.kickDir)
	sv.l.mu.Lock()
	delete(sv.l.servers, sv)
	sv.l.mu.Unlock()
	if !sv.lnClosing.Load() {
		if sv.stopReq.Load() {
			err = loop.ErrClosed
		} else if err == nil {
			err = errors.New("evio: server stopped (an accept or poll error ends an evio server)")
		}
		sv.l.post(func() { sv.h.ListenerFailed(err) })
	}
}

// isolate is called on the Serve goroutine in the Closed event of the last
// connection evio closes while its server stops: what evio does next is
// close its poller and then each listening fd twice (syscall.Close, then
// os.File.Close of the same number), and the second close hits whatever
// descriptor another goroutine opened in between. So the goroutine locks
// its thread (from the start: serve) and gives it a private copy of the
// descriptor table (unshare(CLONE_FILES); Go's runtime starts no thread
// from a locked one, and ends a locked thread with its goroutine),
// where evio's closes land harmlessly, and finish closes each of those
// descriptors once in the process's table.
func (sv *server) isolate() {
	if unix.Gettid() == unix.Getpid() {
		return // never the main thread (see serve)
	}
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return // evio's double close stays a risk
	}
	sv.isolated = true
	for _, fd := range []int{sv.wfd, sv.epfd} {
		if fd >= 0 {
			sv.sharedClose = append(sv.sharedClose, fd)
		}
	}
	sv.sharedClose = append(sv.sharedClose, sv.lnFDs...)
	sv.sharedClose = append(sv.sharedClose, sv.kickLnFDs...)
}

// goid is the calling goroutine's id.
func goid() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return ""
}

// serving is evio's Serving event, on the Serve goroutine before evio's
// loop starts: the listening sockets exist.
func (sv *server) serving(srv evio.Server) evio.Action {
	if len(srv.Addrs) == 0 {
		sv.started <- errors.New("evio: Serving without addresses")
		return evio.Shutdown
	}
	sv.addr = srv.Addrs[0]
	if ua, ok := sv.addr.(*net.UnixAddr); ok && ua.Name != "" && ua.Name[0] != '@' {
		sv.unlink = ua.Name
	}
	sv.lnFDs, sv.lnDup = findListener(sv.addr)
	if len(srv.Addrs) > 1 {
		var d int
		if sv.kickLnFDs, d = findListener(srv.Addrs[1]); d >= 0 {
			_ = unix.Close(d)
		}
	}
	sv.started <- nil
	return evio.None
}

// connectKick connects our end of the kick connection and waits until
// evio has opened it; the socket's path is then removed, so nobody else
// can connect to it.
func (sv *server) connectKick() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sv.kickPath}); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("evio: kick connection: %w", os.NewSyscallError("connect", err))
	}
	sv.kickMu.Lock()
	sv.kickFD = fd
	sv.kickMu.Unlock()
	select {
	case <-sv.ready:
	case <-sv.done:
		return fmt.Errorf("evio: server stopped before its kick connection opened: %v", sv.serveErr)
	case <-time.After(shutdownWait):
		return errors.New("evio: kick connection not opened within 10s")
	}
	_ = os.RemoveAll(sv.kickDir)
	return nil
}

// kick makes the evio goroutine run onKick soon. It writes to a socket
// that evio polls (level-triggered): unlike evio's Wake, whose eventfd
// can be drained after its note was collected, a byte in a socket cannot
// be missed. Safe from any goroutine; kicks coalesce until onKick runs.
func (sv *server) kick() {
	if sv.kickPending.Swap(true) {
		return
	}
	sv.kickMu.RLock()
	if sv.kickFD >= 0 {
		// EAGAIN means bytes are already waiting: the kick is pending.
		_, _ = unix.Write(sv.kickFD, []byte{0})
	}
	sv.kickMu.RUnlock()
}

// exec runs fn on the evio goroutine soon, in order with other execs.
func (sv *server) exec(fn func()) {
	sv.cmdMu.Lock()
	sv.cmds = append(sv.cmds, fn)
	sv.cmdMu.Unlock()
	sv.kick()
}

// shutdown stops the evio server and waits for it.
func (sv *server) shutdown() error {
	sv.stopReq.Store(true)
	sv.kick()
	return sv.waitDone()
}

func (sv *server) waitDone() error {
	select {
	case <-sv.done:
		return nil
	case <-time.After(shutdownWait):
		return fmt.Errorf("evio: server on %v did not stop within %v", sv.addr, shutdownWait)
	}
}

// The evio callbacks. evio runs them one at a time on its loop goroutine
// (the "evio goroutine"); Closed also runs on the Serve goroutine while the
// server stops, after the loop goroutine has exited.

func (sv *server) opened(c evio.Conn) (out []byte, opts evio.Options, action evio.Action) {
	defer sv.yield()
	if err := learnLayout(c); err != nil {
		sv.postE(func() { sv.h.ListenerFailed(err) })
		return nil, opts, evio.Shutdown
	}
	if c.AddrIndex() == 1 {
		if sv.kickConn != nil {
			return nil, opts, evio.Close // only our own end may connect
		}
		sv.kickConn = c
		sv.epfd, sv.wfd = epollFD(c), wakeFD(c)
		opts.ReuseInputBuffer = true // kick bytes are dropped at once
		sv.acceptOn = true           // evio armed the listener
		sv.applyAccept()             // listeners start paused
		close(sv.ready)
		return nil, opts, evio.None
	}
	if sv.lnClosed {
		return nil, opts, evio.Close
	}
	st, err := newStream(sv, c)
	if err != nil {
		return nil, opts, evio.Close // the client sees the connection closed
	}
	c.SetContext(st)
	sv.streams[st] = struct{}{}
	if !sv.fdHeadroom() {
		sv.applyAccept() // stop accepting before an accept fails
	}
	// evio arms the fd for reading right after Opened returns; the stream
	// starts paused, so pause it (and only then announce it) on the next
	// kick.
	sv.opening = append(sv.opening, st)
	sv.kick()
	return nil, opts, evio.None
}

func (sv *server) data(c evio.Conn, in []byte) (out []byte, action evio.Action) {
	defer sv.yield()
	if c == sv.kickConn {
		return sv.onKick()
	}
	st, ok := c.Context().(*stream)
	if !ok {
		return nil, evio.Close
	}
	if len(in) > 0 {
		st.deliver(in)
		if len(in) < evioPacket && sv.detachAtEOF(st) {
			return nil, evio.None
		}
		if st.paused() {
			sv.applyMask(st) // evio does not re-arm after a read that returns nothing
		}
	}
	st.mu.Lock()
	if st.pend != nil && outLen(c) == 0 {
		// Only into an empty evio buffer: output handed back replaces
		// whatever evio still holds (the byte-loss defect).
		out, st.pend = st.pend, nil
		sv.holders[st] = struct{}{}
	}
	if st.closeReq || st.closeHanded {
		// evio flushes its output first. Every Data event returns it
		// again: evio overwrites the action with each event's, so a
		// later Wake answered with None would cancel the close.
		action = evio.Close
		st.closeHanded = true
	}
	st.mu.Unlock()
	if (out != nil || action != evio.None) && st.paused() {
		// evio re-arms reading (EPOLLIN|EPOLLOUT) after this returns.
		sv.dirty[st] = struct{}{}
		sv.kick()
	}
	return out, action
}

func (sv *server) closed(c evio.Conn, err error) evio.Action {
	defer sv.yield()
	action := sv.closedConn(c, err)
	if openConns(c) == 0 && !sv.isolated && goid() == sv.serveGoid {
		sv.isolate() // evio's loop has exited and is closing the rest
	}
	return action
}

func (sv *server) closedConn(c evio.Conn, err error) evio.Action {
	if c == sv.kickConn {
		sv.kickConn = nil
		return evio.None
	}
	st, ok := c.Context().(*stream)
	if !ok {
		return evio.None
	}
	if st.detached {
		st.mu.Lock()
		st.evioHoldsFD = false // detached at its EOF: this close is no news
		st.mu.Unlock()
		return sv.idleAction()
	}
	delete(sv.streams, st)
	delete(sv.holders, st)
	delete(sv.dirty, st)
	st.evioGone = true
	if !st.openPosted && sv.lnClosed {
		st.mu.Lock()
		st.gone = true
		st.maybeCloseFD()
		st.mu.Unlock()
		return sv.idleAction() // never announced: nobody to tell
	}
	if !st.openPosted {
		sv.announce(st)
	}
	if err == nil && sv.salvage(st) {
		sv.postE(func() { sv.h.Data(st, nil) }) // EOF; still writable
		return sv.idleAction()
	}
	st.mu.Lock()
	st.gone, st.goneErr = true, err
	st.maybeCloseFD()
	st.mu.Unlock()
	sv.postE(func() { sv.h.Closed(st, err) })
	return sv.idleAction()
}

// evioPacket is the size of evio's read buffer: a read that returns less
// drained the socket.
const evioPacket = 0xFFFF

// detachAtEOF checks, after a read that drained the socket, whether the
// peer's EOF is already queued (MSG_PEEK returns 0). evio would read it
// next and close the connection; instead the stream leaves evio's poller
// now, while evio's fd is still open and its registration can be deleted
// without any race, and lives on its duplicate (detached), writable as
// net's conns are after the peer's CloseWrite. evio keeps its fd, unpolled,
// until its server stops. Evio goroutine, in Data.
func (sv *server) detachAtEOF(st *stream) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closeReq || st.dfd < 0 || st.pend != nil {
		return false
	}
	if _, held := sv.holders[st]; held {
		return false // evio still holds output for it
	}
	var b [1]byte
	n, _, err := unix.Recvfrom(st.dfd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if n != 0 || err != nil {
		return false
	}
	if unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_DEL, st.fd, nil) != nil {
		return false
	}
	delete(sv.streams, st)
	delete(sv.dirty, st)
	st.evioGone = true
	st.detached, st.gone, st.evioHoldsFD = true, true, true
	sv.l.rememberDetached(st)
	if st.openPosted {
		sv.postE(func() { sv.h.Data(st, nil) })
	} else {
		st.early = append(st.early, nil) // announce delivers the EOF after the bytes
	}
	return true
}

// salvage keeps a connection whose peer sent EOF open for writing, as net
// does (the peer may only have half-closed it): evio has just closed its
// fd N at the EOF, but our duplicate keeps the socket, and with it evio's
// epoll registration of (socket, N), which would report the EOF for ever.
// fcntl(F_DUPFD, N) returns N itself only while N is still free — it never
// clobbers a descriptor another goroutine opened meanwhile — and with it
// the stale registration is deleted. The stream then lives on its
// duplicate alone (detached). If N was taken, the stream ends as evio
// ended it (writes fail with EPIPE). Evio goroutine, in Closed.
func (sv *server) salvage(st *stream) bool {
	if sv.stopReq.Load() || sv.epfd < 0 || goid() == sv.serveGoid {
		return false // the server is stopping: this was no peer's EOF
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closeReq || st.dfd < 0 {
		return false
	}
	n, err := unix.FcntlInt(uintptr(st.dfd), unix.F_DUPFD_CLOEXEC, st.fd)
	if err != nil {
		return false
	}
	if n != st.fd {
		_ = unix.Close(n)
		return false
	}
	_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_DEL, n, nil)
	_ = unix.Close(n)
	st.detached, st.gone = true, true
	sv.l.rememberDetached(st)
	if st.held {
		st.watchLocked() // flush what evio never got
	}
	return true
}

// postE posts fn to the loop from the evio goroutine (or, while the
// server stops, the Serve goroutine). With one P the loop goroutine it
// readies would wait for sysmon, so the callback yields (see yield).
func (sv *server) postE(fn func()) {
	sv.readied = sv.readied || sv.oneP
	sv.l.post(fn)
}

// yield lets the goroutines that commands of other goroutines readied run
// before evio blocks its thread in epoll_wait again: readied goroutines
// sit in this P's runnext slot, and a thread blocked in a system call can
// strand them there until sysmon takes the P away (DESIGN.md). Measured
// (BenchmarkWorkarounds/kick): a command's round trip 56 µs without, 9 µs
// with. After posting events it yields only when the process has one P
// (GOMAXPROCS=1, the bench's servers): there, on evhub bench, server CPU
// per round trip against raw evio went from 0.66× to 0.81× (pingpong-1)
// and 0.75× to 0.89× (pingpong-64); with more Ps another P steals the
// loop goroutine soon enough, and yielding made a one-connection echo
// slower (BenchmarkEchoPingPong, GOMAXPROCS=2: 103 against 88 µs).
func (sv *server) yield() {
	if sv.readied {
		sv.readied = false
		runtime.Gosched()
	}
}

// idleAction stops the server once its listener is closed and its last
// connection gone.
func (sv *server) idleAction() evio.Action {
	if sv.stopReq.Load() || (sv.lnClosed && len(sv.streams) == 0) {
		return evio.Shutdown
	}
	return evio.None
}

// preWrite is evio's PreWrite: it is about to write some connection's
// buffered output. Whether that drained it is known only after the write,
// so look on the next iteration.
func (sv *server) preWrite() {
	if len(sv.holders) > 0 {
		sv.checkNeeded = true
		sv.kick()
	}
}

// onKick runs on the evio goroutine when the kick connection has bytes:
// the commands of other goroutines, new streams, drain checks, masks.
func (sv *server) onKick() ([]byte, evio.Action) {
	sv.kickPending.Store(false) // a later kick writes a new byte
	sv.cmdMu.Lock()
	cmds := sv.cmds
	sv.cmds = sv.cmdsSpare[:0]
	sv.cmdMu.Unlock()
	for i, fn := range cmds {
		cmds[i] = nil
		fn()
	}
	sv.readied = sv.readied || len(cmds) > 0
	sv.cmdMu.Lock()
	sv.cmdsSpare = cmds[:0]
	sv.cmdMu.Unlock()

	for i, st := range sv.opening {
		sv.opening[i] = nil
		if st.openPosted || (st.evioGone && !st.detached) {
			continue // closed already, and announced then
		}
		if sv.lnClosed {
			if st.detached {
				_ = st.Close()
			} else {
				st.requestClose()
			}
			continue
		}
		if !st.evioGone {
			sv.applyMask(st)
		}
		sv.announce(st)
	}
	sv.opening = sv.opening[:0]

	if sv.checkNeeded {
		sv.checkNeeded = false
		for st := range sv.holders {
			if outLen(st.c) == 0 {
				delete(sv.holders, st)
				st.drained()
				sv.dirty[st] = struct{}{} // evio re-armed reading when it drained
			}
		}
	}
	for st := range sv.dirty {
		delete(sv.dirty, st)
		if st.paused() {
			sv.applyMask(st)
		}
	}
	return nil, sv.idleAction()
}

// announce posts Opened and any bytes read before it.
func (sv *server) announce(st *stream) {
	st.openPosted = true
	sv.postE(func() { sv.h.Opened(st) })
	for _, p := range st.early {
		sv.postData(st, p)
	}
	st.early = nil
}

func (sv *server) postData(st *stream, p []byte) {
	n := int64(len(p))
	sv.postE(func() {
		sv.h.Data(st, p)
		st.consumed(n)
	})
}

// applyMask sets the stream's epoll interest on evio's poller to what the
// stream wants: reading unless paused, writing while evio holds output or
// has an action to run. Evio goroutine only.
func (sv *server) applyMask(st *stream) {
	if st.evioGone || sv.epfd < 0 {
		return
	}
	var ev uint32
	if !st.paused() {
		ev |= unix.EPOLLIN
	}
	if outLen(st.c) > 0 || st.closeHanded {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_MOD, st.fd, &unix.EpollEvent{Events: ev, Fd: int32(st.fd)})
}

// applyAccept arms or disarms the listening fds on evio's poller: armed
// while the scheduler wants connections and descriptors are free. evio
// ends its whole server, closing every connection, when accept fails with
// anything but EAGAIN; so with no descriptor to spare the listener stays
// disarmed and this retries with a growing delay (5 ms to 1 s), the way
// the fd-based Accept backs off on EMFILE. Evio goroutine only.
func (sv *server) applyAccept() {
	if sv.lnClosed {
		return
	}
	want := sv.acceptWanted.Load()
	if want && !sv.fdHeadroom() {
		want = false
		if sv.backoff == 0 {
			sv.backoff = 5 * time.Millisecond
		} else {
			sv.backoff = min(2*sv.backoff, time.Second)
		}
		sv.retryMu.Lock()
		if sv.retry != nil {
			sv.retry.Stop()
		}
		sv.retry = time.AfterFunc(sv.backoff, func() { sv.exec(sv.applyAccept) })
		sv.retryMu.Unlock()
	} else if want {
		sv.backoff = 0
	}
	if want == sv.acceptOn {
		return
	}
	var ev uint32
	if want {
		ev = unix.EPOLLIN
	}
	for _, fd := range sv.lnFDs {
		// One of them is registered; the other is net's copy.
		_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
	}
	sv.acceptOn = want
}

// fdHeadroom reports whether two descriptors are free: one for evio's
// accept and one for the stream's duplicate. It duplicates evio's epoll fd
// twice (no path lookup). Evio goroutine only.
func (sv *server) fdHeadroom() bool {
	a, err := unix.FcntlInt(uintptr(sv.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return false
	}
	b, err := unix.FcntlInt(uintptr(sv.epfd), unix.F_DUPFD_CLOEXEC, 0)
	_ = unix.Close(a)
	if err != nil {
		return false
	}
	_ = unix.Close(b)
	return true
}

// closeListener stops accepting without stopping the server (which would
// close every connection): the listening fds leave evio's poller and the
// socket is shut down, so connecting fails with ECONNREFUSED. Evio
// goroutine only.
func (sv *server) closeListener() {
	if sv.lnClosed {
		return
	}
	sv.lnClosed = true
	for _, fd := range sv.lnFDs {
		_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	sv.lnMu.Lock()
	if sv.lnDup >= 0 {
		_ = unix.Shutdown(sv.lnDup, unix.SHUT_RDWR)
	}
	sv.lnMu.Unlock()
}

// findListener returns evio's fds of the listening socket bound to addr,
// and a close-on-exec duplicate of one (-1 if none was found). evio keeps
// them private; they are found by their address among the process's
// listening sockets, and the duplicate is checked again, so a descriptor
// reused meanwhile cannot be mistaken for it.
func findListener(addr net.Addr) (fds []int, dup int) {
	dup = -1
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, -1
	}
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == self {
			continue
		}
		if isListenerOf(fd, addr) {
			fds = append(fds, fd)
		}
	}
	_ = d.Close()
	for _, fd := range fds {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if isListenerOf(nfd, addr) {
			return fds, nfd
		}
		_ = unix.Close(nfd)
	}
	return fds, -1
}

func isListenerOf(fd int, addr net.Addr) bool {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	a := sockaddrAddr(sa)
	return a != nil && a.Network() == addr.Network() && a.String() == addr.String()
}

// sockaddrAddr converts a stream socket's address to net's type.
func sockaddrAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// listener is a StreamListener on a server.
type listener struct {
	sv   *server
	once sync.Once
}

func (ln *listener) Addr() net.Addr { return ln.sv.addr }

func (ln *listener) Close() error {
	first := false
	ln.once.Do(func() {
		first = true
		sv := ln.sv
		sv.lnClosing.Store(true)
		done := make(chan struct{})
		sv.exec(func() { sv.closeListener(); close(done) })
		select {
		case <-done:
		case <-sv.done:
		}
		sv.lnMu.Lock()
		if sv.lnDup >= 0 {
			_ = unix.Close(sv.lnDup)
			sv.lnDup = -1
		}
		sv.lnMu.Unlock()
		if sv.unlink != "" {
			_ = unix.Unlink(sv.unlink)
		}
	})
	if !first {
		return net.ErrClosed
	}
	return nil
}

// SetAcceptPaused arms or disarms accepting (loop.StreamListener).
func (ln *listener) SetAcceptPaused(paused bool) {
	if ln.sv.acceptWanted.Swap(!paused) == !paused {
		return
	}
	ln.sv.exec(ln.sv.applyAccept)
}

func (ln *listener) Control(f func(fd uintptr)) error {
	sv := ln.sv
	sv.lnMu.Lock()
	defer sv.lnMu.Unlock()
	if sv.lnDup < 0 {
		if sv.lnClosing.Load() {
			return net.ErrClosed
		}
		return &loop.UnsupportedError{Backend: Name, Capability: "listener-fd",
			Reason: "evio's listening descriptor was not found"}
	}
	f(uintptr(sv.lnDup))
	return nil
}
