package reactor

import (
	"io"
	"net"

	"github.com/evhub/evhub/loop"
)

// A loop that owns its sockets (evio) serves through loop.StreamServer:
// the library accepts, reads and writes, and each stream becomes a Conn
// whose input arrives in Data (the view is the library's buffer) and whose
// output goes to Stream.Write, which takes what the kernel takes and holds
// at most one bounded chunk; the rest stays in the Conn's pooled output
// buffer until Writable, under the same high- and low-water marks.
func (s *Server) listenStream(network, address string) (net.Addr, error) {
	el := s.els[0]
	ss := el.l.(loop.StreamServer)
	a := &streamAdapter{el: el}
	sl, err := ss.ServeStream(network, address, a)
	if err != nil {
		return nil, err
	}
	sl.SetAcceptPaused(false)
	ln := &listener{s: s, sl: sl}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = sl.Close()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: sl.Addr(), Err: ErrServerClosed}
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	return sl.Addr(), nil
}

func (ln *listener) closeStream() { _ = ln.sl.Close() }

// streamAdapter turns a StreamServer's events into Conn events; loop
// goroutine only.
type streamAdapter struct {
	el    *eventLoop
	conns loop.StreamValues[*Conn]
}

func (a *streamAdapter) Opened(st loop.Stream) {
	el := a.el
	el.mu.Lock()
	closed := el.closed
	el.mu.Unlock()
	if closed {
		_ = st.Close()
		return
	}
	el.nconn.Add(1)
	el.s.live.Add(1)
	c := el.newConn(-1, fStream)
	*c.watcher() = st
	a.conns.Set(st, c)
	el.open(c)
}

// conn is the Conn of st, nil if it has none.
func (a *streamAdapter) conn(st loop.Stream) *Conn {
	c, _ := a.conns.Get(st)
	return c
}

// BorrowsData tells the StreamServer that Data's bytes are not kept once
// Data returns (loop.DataBorrower): deliver copies whatever the handler
// leaves unread.
func (a *streamAdapter) BorrowsData() {}

func (a *streamAdapter) Data(st loop.Stream, p []byte) {
	c := a.conn(st)
	if c == nil || c.flags&fClosed != 0 {
		return
	}
	if len(p) == 0 {
		c.peerEOF()
	} else if c.flags&fArmedR != 0 || c.flags&fPeerEOF == 0 {
		// A few bytes may arrive just after a pause: they are input all
		// the same.
		c.deliver(p)
	}
	a.el.flushDirty()
}

func (a *streamAdapter) Writable(st loop.Stream) {
	c := a.conn(st)
	if c == nil || c.flags&fClosed != 0 {
		return
	}
	c.flags &^= fArmedW
	if c.flush() {
		c.markDirty()
	}
	a.el.flushDirty()
}

func (a *streamAdapter) Closed(st loop.Stream, err error) {
	c := a.conn(st)
	a.conns.Delete(st)
	if c == nil || c.flags&fClosed != 0 {
		return
	}
	if err == nil {
		err = io.EOF
	}
	c.finishClose(err)
	a.el.flushDirty()
}

func (a *streamAdapter) ListenerFailed(error) {}

// stream is the connection's stream; fStream connections only.
func (c *Conn) stream() loop.Stream { return (*c.watcher()).(loop.Stream) }
