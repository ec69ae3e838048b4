//go:build linux

package evio

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/backoff"
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
	borrow  bool // h is a loop.DataBorrower: reads go through readbuf.go

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
	// masks are streams whose epoll interest to set (applyLater).
	masks, masksSpare []*stream

	stopReq  atomic.Bool
	started  chan error
	ready    chan struct{} // the kick connection is open
	done     chan struct{} // evio.Serve returned
	serveErr error

	// Evio goroutine only.
	epfd        int
	kickConn    evio.Conn
	nstreams    int                  // streams in evio's poller
	holders     map[*stream]struct{} // streams whose output evio holds
	dirty       map[*stream]struct{} // masks evio may have re-armed
	opening     []*stream
	early       map[*stream][][]byte // bytes (and an EOF, nil) read before Opened was posted
	checkNeeded bool
	batch       loop.Batch // a callback readied goroutines: yield
	oneP        bool       // GOMAXPROCS was 1 when the server started
	lnClosed    bool
	acceptOn    bool           // the listening fds are armed on evio's poller
	backoff     backoff.Accept // retry delay while no descriptor is free

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
		holders: map[*stream]struct{}{},
		dirty:   map[*stream]struct{}{},
		early:   map[*stream][][]byte{},
		oneP:    runtime.GOMAXPROCS(0) == 1,
	}
	_, sv.borrow = h.(loop.DataBorrower)
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
	if !sv.awaitServeParked(shutdownWait) {
		sv.stopReq.Store(true)
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sv.addr, Err: fmt.Errorf("evio: Serve did not start waiting for its loop within %v", shutdownWait)}
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
	prepareCopies()
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
		sv.l.deliver(event{kind: evListenerFailed, sv: sv, err: err})
	}
}

// isolate is called on the Serve goroutine in the Closed event of the last
// connection evio closes while its server stops: what evio does next is
// close its poller and then each listening fd twice (syscall.Close, then
// os.File.Close of the same number), and the second close hits whatever
// descriptor another goroutine opened in between. So the goroutine locks
// its thread (from the start: serve) and gives it a private descriptor
// table that holds none of them (unshareKept; Go's runtime starts no
// thread from a locked one, and ends a locked thread with its goroutine),
// where evio's closes land harmlessly, and finish closes each of those
// descriptors once in the process's table.
func (sv *server) isolate() {
	if unix.Gettid() == unix.Getpid() {
		return // never the main thread (see serve)
	}
	if _, err := unshareKept(); err != nil {
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

// awaitServeParked waits, for at most d, until evio's Serve goroutine is
// parked in evio's waitForShutdown. Serve starts its loop goroutine and
// only then waits on a sync.Cond that the loop signals as it ends; a loop
// that ends first (an accept error, a Shutdown) signals nobody, and Serve
// then waits for ever with nothing left to wake it: every Close after
// that hung. A listener is handed out only once Serve waits, so nothing
// done with it can end the loop before. The goroutine's state is read
// from runtime.Stack, as goid reads its id: once per listener.
func (sv *server) awaitServeParked(d time.Duration) bool {
	head := "goroutine " + sv.serveGoid + " ["
	buf := make([]byte, 64<<10)
	for deadline := time.Now().Add(d); ; {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		all := string(buf[:n])
		if i := strings.Index(all, head); i >= 0 {
			g := all[i:]
			if j := strings.Index(g, "\n\n"); j >= 0 {
				g = g[:j]
			}
			if strings.Contains(g, "evio.(*server).waitForShutdown") {
				return true
			}
		}
		select {
		case <-sv.done:
			return true // Serve returned: nothing waits any more
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
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
