package reactor

import (
	"errors"
	"fmt"
	"time"
)

// Handler receives a server's connection events. Every method runs on the
// loop goroutine that owns the connection, one call at a time per loop, so
// a handler needs no locks for per-connection state (keep it in
// Conn.SetContext). A handler must not block: a blocked callback stalls
// every connection of its loop.
type Handler interface {
	// OnOpen is called once when a connection is accepted, dialled or
	// enrolled, before any OnData.
	OnOpen(c *Conn)
	// OnData is called when bytes have arrived. The connection's input
	// view (Peek, Next, Discard, InboundBuffered) holds what is left over
	// from earlier calls followed by what just arrived. Bytes the handler
	// does not take stay for the next call, which comes when more bytes
	// arrive.
	OnData(c *Conn)
	// OnClose is called once when the connection is gone, with the
	// reason: nil after Conn.Close, io.EOF when the peer closed it, a
	// *PanicError when a callback panicked, ErrServerClosed when the server
	// closed it, os.ErrDeadlineExceeded (wrapped) for a timeout, or the
	// socket's error. The fd is still open during OnClose (addresses
	// work); it is closed when OnClose returns.
	OnClose(c *Conn, err error)
}

// EOFHandler is an optional interface of a Handler that wants to keep
// writing after the peer half-closed the connection (shutdown(SHUT_WR) on
// its side). Without it, the peer's EOF closes the connection once the
// pending output is sent. With it, OnEOF is called instead and the
// connection stays open for writing until the handler closes it.
type EOFHandler interface {
	OnEOF(c *Conn)
}

// DrainHandler is an optional interface of a Handler that produces output
// faster than the peer reads it: OnDrain is called when a connection's
// pending output, having passed Options.HighWater (at the end of a
// callback, before it was sent, or after a send), has fallen to
// Options.LowWater. A producer writes until OutboundBuffered passes
// HighWater and continues in OnDrain; the reactor keeps calling it while
// the kernel takes everything at once, and waits for the socket when it
// does not.
type DrainHandler interface {
	OnDrain(c *Conn)
}

// Ticker is an optional interface of a Handler that wants a periodic
// callback: OnTick runs on the first loop once the server starts and then
// again after the delay it returns; a delay <= 0 stops the ticks.
type Ticker interface {
	OnTick(now time.Time) (delay time.Duration)
}

// Funcs adapts functions to a Handler (and to EOFHandler and DrainHandler
// where set). A nil OnData discards input; other nil fields do nothing.
type Funcs struct {
	Open  func(c *Conn)
	Data  func(c *Conn)
	Close func(c *Conn, err error)
}

// OnOpen implements Handler.
func (f Funcs) OnOpen(c *Conn) {
	if f.Open != nil {
		f.Open(c)
	}
}

// OnData implements Handler.
func (f Funcs) OnData(c *Conn) {
	if f.Data != nil {
		f.Data(c)
		return
	}
	_, _ = c.Discard(-1)
}

// OnClose implements Handler.
func (f Funcs) OnClose(c *Conn, err error) {
	if f.Close != nil {
		f.Close(c, err)
	}
}

// ErrServerClosed is the reason given to OnClose for connections the
// server closed in Close or at the end of Shutdown, and the error of
// operations on a closed server.
var ErrServerClosed = errors.New("reactor: server closed")

// ErrBackpressure is returned (wrapped) by AsyncWrite when the
// connection's pending output is past Options.HighWater: the bytes were
// not queued. Retry after a completion callback has run or after OnDrain.
var ErrBackpressure = errors.New("reactor: connection output past its high-water mark")

// PanicError is the reason given to OnClose when a callback of the
// connection panicked: the connection is closed and the server goes on.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("reactor: handler panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
