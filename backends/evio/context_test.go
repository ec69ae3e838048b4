//go:build linux

package evio_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// ctxHandler checks the context of each stream through its events.
type ctxHandler struct {
	t      *testing.T
	opened chan any // Context() in Opened, before SetContext
	data   chan any // Context() in Data
	closed chan any // Context() in Closed
}

func (h ctxHandler) Opened(s loop.Stream) {
	cs := s.(loop.ContextStream)
	h.opened <- cs.Context()
	cs.SetContext("mine")
	s.SetReadPaused(false)
}
func (h ctxHandler) Data(s loop.Stream, p []byte) {
	if len(p) > 0 {
		h.data <- s.(loop.ContextStream).Context()
		_ = s.Close()
	}
}
func (h ctxHandler) Writable(loop.Stream) {}
func (h ctxHandler) Closed(s loop.Stream, _ error) {
	h.closed <- s.(loop.ContextStream).Context()
}
func (h ctxHandler) ListenerFailed(err error) { assert.NoError(h.t, err) }

// TestContextStream: evio's streams are loop.ContextStreams — nil at
// Opened, then the value set, in every later event.
func TestContextStream(t *testing.T) {
	checkClean(t)
	l := runningLoop(t)
	h := ctxHandler{t: t, opened: make(chan any, 1), data: make(chan any, 1), closed: make(chan any, 1)}
	ln, err := l.ServeStream("tcp", "127.0.0.1:0", h)
	require.NoError(t, err)
	defer ln.Close()
	ln.SetAcceptPaused(false)
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	for name, ch := range map[string]chan any{"Opened": h.opened, "Data": h.data, "Closed": h.closed} {
		want := any("mine")
		if name == "Opened" {
			want = nil
		}
		select {
		case got := <-ch:
			assert.Equal(t, want, got, name)
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s", name)
		}
	}
}
