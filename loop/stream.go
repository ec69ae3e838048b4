package loop

import (
	"net"
)

// StreamServer is an optional capability of loops that own their sockets
// and cannot watch an arbitrary fd (they lack CapWatch), such as evio: the
// library accepts connections, reads them and writes them in its own
// callbacks. The scheduler discovers it by type assertion and builds
// Listen on it; everything else about a hub socket (waiting, deadlines,
// errors) stays in the scheduler.
//
// A loop that can watch fds does not need it: the scheduler then builds
// listeners on fds itself.
type StreamServer interface {
	// ServeStream listens on a stream network ("tcp", "tcp4", "tcp6",
	// "unix") and delivers every accepted connection's events to h on the
	// loop goroutine. Unlike the Loop's other methods it is safe from any
	// goroutine: starting a listener may block until the library serves
	// it, and the loop goroutine must not wait for that. Errors are those
	// of net.Listen (*net.OpError) where the failure is the same.
	ServeStream(network, address string, h StreamHandler) (StreamListener, error)
}

// StreamListener is a listener served by a StreamServer. Its methods are
// safe from any goroutine.
type StreamListener interface {
	// Addr is the address the listener is bound to, of net's concrete
	// type (*net.TCPAddr, *net.UnixAddr).
	Addr() net.Addr
	// Close stops accepting: connecting to Addr fails from then on, as
	// after closing a net.Listener. Connections already accepted stay
	// open (net's semantics). No Opened follows once Close returns.
	Close() error
	// SetAcceptPaused stops (true) or resumes (false) accepting. Listeners
	// start paused, so that connections nobody accepts wait in the
	// kernel's backlog as they would on a net.Listener, and a library that
	// cannot survive a failed accept (EMFILE) is asked to accept only when
	// an Accept waits.
	SetAcceptPaused(paused bool)
	// Control runs f with the listening socket's fd, for
	// net.Listener.SyscallConn; an error wrapping errors.ErrUnsupported if
	// the library does not expose it.
	Control(f func(fd uintptr)) error
}

// StreamHandler receives a stream listener's events. Every method runs on
// the loop goroutine, one call at a time, like every other callback of
// the loop; for one stream the calls come in the order Opened, Data and
// Writable (any number, interleaved), Closed.
type StreamHandler interface {
	// Opened delivers a newly accepted connection. A new stream's reading
	// is paused (see Stream.SetReadPaused): bytes the peer sends stay in
	// the kernel until the handler asks for them, as they would on a
	// net.Conn nobody reads.
	Opened(s Stream)
	// Data delivers bytes read from s, in order. p is the handler's to
	// keep (unless the handler is a DataBorrower: then only until Data
	// returns). A few bytes read just before a pause took effect may still
	// arrive after SetReadPaused(true). An empty p is the peer's EOF: no
	// Data follows, and the stream stays writable (the peer may have only
	// half-closed it) until Closed.
	Data(s Stream, p []byte)
	// Writable reports that s can take more bytes after a Write that took
	// fewer than it was given. It is the write-progress signal that
	// lets a writer block without the library buffering without bound.
	Writable(s Stream)
	// Closed reports that the connection is gone: the peer closed it
	// (err nil: an orderly EOF after the last Data), an I/O error (err is
	// the syscall error), or Stream.Close completed. No call for s
	// follows.
	Closed(s Stream, err error)
	// ListenerFailed reports that the listener stopped accepting for a
	// reason other than StreamListener.Close (the library's server died);
	// no Opened follows.
	ListenerFailed(err error)
}

// Stream is one accepted connection of a StreamServer. Its methods are
// safe from any goroutine: the scheduler calls them from the goroutines
// that use the net.Conn.
type Stream interface {
	// LocalAddr and RemoteAddr are the connection's addresses, of net's
	// concrete types.
	LocalAddr() net.Addr
	RemoteAddr() net.Addr

	// Write takes bytes for sending without blocking. It returns how many
	// of p it took: bytes taken are either in the kernel already or held
	// by the stream in a buffer of bounded size that is sent before
	// anything written later, so they count as written (as bytes in a
	// kernel send buffer do). held reports that the stream now holds bytes
	// the kernel could not take yet: it takes nothing more (Write returns
	// n == 0) until Writable, which follows once they are sent. n < len(p)
	// with a nil error implies held. Errors are *os.SyscallError values
	// like net's ("write: broken pipe"). An empty p that is not nil asks
	// the kernel as net's Write of no bytes does (a write(2) of 0 bytes:
	// a pending error, or EPIPE); a nil p only reports held and errors the
	// stream knows of.
	Write(p []byte) (n int, held bool, err error)

	// SetReadPaused stops (true) or resumes (false) reading from the
	// socket, the flow control that bounds what a slow reader buffers.
	// Streams start paused.
	SetReadPaused(paused bool)

	// CloseWrite sends EOF to the peer after every byte taken so far
	// (shutdown(SHUT_WR)); the stream stays readable.
	CloseWrite() error

	// Close closes the connection. Bytes already taken are still sent
	// unless the linger option says otherwise; Closed follows once the
	// socket is released. Write fails after Close.
	Close() error

	// Control runs f with the connection's fd, for net.Conn.SyscallConn
	// and socket options; an error wrapping errors.ErrUnsupported if the
	// library does not expose it. The library owns the socket's I/O: f may
	// read or write the fd only while reading is paused and the stream
	// holds no bytes (the scheduler's raw I/O arranges both).
	Control(f func(fd uintptr)) error
}

// DirectReadStream is an optional interface of a Stream whose library can
// hand a socket's reading back: once it has delivered an empty Data (it
// reads no more: the peer's EOF, a socket error, or CloseRead), the
// scheduler reads what the kernel still reports (bytes that arrive after
// a shutdown of the reading side, the EOF, a pending error, in net's
// order) with ReadDirect, instead of taking the empty Data for io.EOF.
type DirectReadStream interface {
	Stream
	// ReadDirect reads from the socket without blocking, once the empty
	// Data was delivered: n > 0, or io.EOF (the kernel's read returned
	// 0), or the read's error (*os.SyscallError), syscall.EAGAIN when
	// nothing is there yet (the caller waits with poll(2) on the fd of
	// Control), or net.ErrClosed after Close.
	ReadDirect(p []byte) (int, error)
	// CloseRead shuts down the reading side of the socket
	// (shutdown(SHUT_RD)), as net's CloseRead does, and returns that
	// call's error (*os.SyscallError: ENOTCONN once the kernel has closed
	// the connection), or net.ErrClosed after Close. On success the
	// library stops reading the socket and an empty Data follows the
	// bytes it read before.
	CloseRead() error
}

// DataBorrower is an optional interface of a StreamHandler that does not
// keep the p of Data once Data returns (it copies what it keeps). A
// StreamServer may then pass bytes in a buffer it reuses after the call,
// where otherwise each read is a fresh allocation that the handler owns:
// for a library that reads into one shared buffer (evio), that is one
// allocation less per read, and an idle connection that has read once
// holds no garbage of it. BorrowsData itself does nothing; the server
// looks for it when the handler is given to ServeStream.
type DataBorrower interface {
	StreamHandler
	BorrowsData()
}

// ContextStream is an optional interface of a Stream that keeps one value
// for its handler, so that a handler finds its own state for a stream in
// the stream itself rather than in a map keyed by it (a map entry costs
// more memory per connection than the slot, and a hash per event).
// SetContext and Context are for the loop goroutine: set in Opened, read
// in the events that follow. A new stream's context is nil.
type ContextStream interface {
	Stream
	SetContext(v any)
	Context() any
}

// StreamValues keeps one value per stream for a StreamHandler: in the
// stream itself where it is a ContextStream, else in a map. Loop
// goroutine only. The zero value is ready to use.
type StreamValues[T any] struct {
	m map[Stream]T // streams that are not ContextStreams
}

// Set keeps x for s.
func (v *StreamValues[T]) Set(s Stream, x T) {
	if cs, ok := s.(ContextStream); ok {
		cs.SetContext(x)
		return
	}
	if v.m == nil {
		v.m = map[Stream]T{}
	}
	v.m[s] = x
}

// Get returns the value kept for s, and whether there is one.
func (v *StreamValues[T]) Get(s Stream) (T, bool) {
	if cs, ok := s.(ContextStream); ok {
		x, ok := cs.Context().(T)
		return x, ok
	}
	x, ok := v.m[s]
	return x, ok
}

// Delete forgets the value kept for s.
func (v *StreamValues[T]) Delete(s Stream) {
	if cs, ok := s.(ContextStream); ok {
		cs.SetContext(nil)
		return
	}
	delete(v.m, s)
}
