//go:build linux

package evio_test

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/evio"
	"github.com/evhub/evhub/loop"
)

// resetHandler makes the close of a stream that gets bytes after its
// Close a reset, as the scheduler does for bytes nobody will read.
type resetHandler struct {
	opened  chan loop.Stream
	control chan error
	closing chan struct{}
}

func (h *resetHandler) Opened(s loop.Stream) {
	s.SetReadPaused(false)
	h.opened <- s
}

func (h *resetHandler) Data(s loop.Stream, p []byte) {
	if len(p) == 0 {
		return
	}
	<-h.closing
	h.control <- resetOnClose(s)
}
func (*resetHandler) Writable(loop.Stream)      {}
func (*resetHandler) Closed(loop.Stream, error) {}
func (*resetHandler) ListenerFailed(error)      {}

// TestDataHoldsDuplicate: a Close from another goroutine while a Data
// event's bytes are between their count (no longer in flight, so the
// Close does not reset) and the handler (not yet unread there) must leave
// the handler able to reset the connection when the bytes reach it: the
// duplicate stays open until the handler returns, and the peer sees the
// reset, as net's peer does when a conn closes with unread bytes.
func TestDataHoldsDuplicate(t *testing.T) {
	l := runningLoop(t)
	h := &resetHandler{opened: make(chan loop.Stream, 1), control: make(chan error, 1), closing: make(chan struct{})}
	entered := make(chan struct{})
	closed := make(chan struct{})
	defer evio.OnDataHanded(func() {
		close(entered)
		select {
		case <-closed:
		case <-time.After(300 * time.Millisecond): // the Close waits for the handler
		}
	})()
	s, peer := serveOne(t, l, h, h.opened)
	_, err := peer.Write([]byte("unread"))
	require.NoError(t, err)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no Data event")
	}
	close(h.closing)
	require.NoError(t, s.Close())
	close(closed)
	require.NoError(t, <-h.control, "the handler could not reach the socket")
	assertPeerReset(t, peer)
}

// lateHandler resets, as the scheduler does, a stream whose bytes reach
// it after its Close (they are unread), if it still can.
type lateHandler struct {
	opened  chan loop.Stream
	closing atomic.Bool
}

func (h *lateHandler) Opened(s loop.Stream) {
	s.SetReadPaused(false)
	h.opened <- s
}

func (h *lateHandler) Data(s loop.Stream, p []byte) {
	if len(p) > 0 && h.closing.Load() {
		_ = resetOnClose(s)
	}
}
func (*lateHandler) Writable(loop.Stream)      {}
func (*lateHandler) Closed(loop.Stream, error) {}
func (*lateHandler) ListenerFailed(error)      {}

// TestCloseDuringReadResets: a Close that lands while evio's Data event
// reads (its bytes sent on to the loop goroutine, which is busy) makes
// that event return evio's Close, and evio closes the socket before the
// handler has the bytes: too late for the handler to reset it. The close
// must be a reset all the same, as net's is with bytes unread: the peer
// reads ECONNRESET, not EOF.
func TestCloseDuringReadResets(t *testing.T) {
	l := runningLoop(t)
	h := &lateHandler{opened: make(chan loop.Stream, 1)}
	s, peer := serveOne(t, l, h, h.opened)
	busy := make(chan struct{})
	defer close(busy)
	require.NoError(t, l.Post(func() { <-busy }))
	closed := make(chan error, 1)
	defer evio.OnReadThenClose(func() {
		h.closing.Store(true)
		go func() { closed <- s.Close() }()
	})()
	_, err := peer.Write([]byte("unread"))
	require.NoError(t, err)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	assertPeerReset(t, peer)
}

// resetOnClose makes s's close a reset (SO_LINGER 0), as the scheduler
// does for bytes nobody will read.
func resetOnClose(s loop.Stream) error {
	return s.Control(func(fd uintptr) {
		_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	})
}

// serveOne serves h on l's 127.0.0.1, dials it, and returns the stream
// opened reports and the peer (both closed by t's end).
func serveOne(t *testing.T, l *evio.Loop, h loop.StreamHandler, opened <-chan loop.Stream) (loop.Stream, net.Conn) {
	ln, err := l.ServeStream("tcp", "127.0.0.1:0", h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	ln.SetAcceptPaused(false)
	peer, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = peer.Close() })
	require.NoError(t, peer.SetDeadline(time.Now().Add(10*time.Second)))
	select {
	case s := <-opened:
		return s, peer
	case <-time.After(10 * time.Second):
		t.Fatal("no Opened")
		return nil, nil
	}
}

// assertPeerReset checks that peer's next read reports a reset.
func assertPeerReset(t *testing.T, peer net.Conn) {
	_, err := peer.Read(make([]byte, 1))
	var errno syscall.Errno
	assert.True(t, errors.As(err, &errno) && errno == syscall.ECONNRESET, "the peer read %v, not a reset", err)
}
