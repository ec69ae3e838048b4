//go:build linux

package evio_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// keepHandler collects every Data slice of one stream as given (no copy)
// and, when borrow is set, a copy made during the call as well.
type keepHandler struct {
	t       *testing.T
	kept    [][]byte
	copied  []byte
	total   int
	want    int
	done    chan struct{}
	borrows bool
}

func (h *keepHandler) Opened(s loop.Stream) { s.SetReadPaused(false) }
func (h *keepHandler) Data(s loop.Stream, p []byte) {
	if len(p) == 0 {
		return // the peer's EOF, as the test ends
	}
	if h.total == h.want {
		h.t.Errorf("Data after the last byte: %d bytes", len(p))
	}
	h.kept = append(h.kept, p)
	h.copied = append(h.copied, p...)
	h.total += len(p)
	if h.total == h.want {
		close(h.done)
	}
}
func (h *keepHandler) Writable(loop.Stream)      {}
func (h *keepHandler) Closed(loop.Stream, error) {}
func (h *keepHandler) ListenerFailed(err error)  { assert.NoError(h.t, err) }

type borrowHandler struct{ *keepHandler }

func (borrowHandler) BorrowsData() {}

// TestDataBorrower: a handler that borrows Data's bytes gets them all,
// in order (it copies them in the call), from buffers that are reused
// once Data returns; a handler that does not gets slices that stay its
// own: what it kept without copying is intact at the end.
func TestDataBorrower(t *testing.T) {
	for _, borrow := range []bool{false, true} {
		t.Run(map[bool]string{false: "owns", true: "borrows"}[borrow], func(t *testing.T) {
			checkClean(t)
			l := runningLoop(t)
			msg := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 30000) // ~1 MiB
			kh := &keepHandler{t: t, want: len(msg), done: make(chan struct{})}
			var h loop.StreamHandler = kh
			if borrow {
				h = borrowHandler{kh}
			}
			ln, err := l.ServeStream("tcp", "127.0.0.1:0", h)
			require.NoError(t, err)
			defer ln.Close()
			ln.SetAcceptPaused(false)
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			// Small writes, paced, so that evio reads many times.
			for off := 0; off < len(msg); {
				n := min(len(msg)-off, 1+off%3000)
				_, err := c.Write(msg[off : off+n])
				require.NoError(t, err)
				off += n
			}
			select {
			case <-kh.done:
			case <-time.After(10 * time.Second):
				t.Fatal("not all bytes arrived")
			}
			done := make(chan struct{})
			require.NoError(t, l.Post(func() { close(done) }))
			<-done
			require.True(t, bytes.Equal(msg, kh.copied), "bytes copied during Data differ")
			if !borrow {
				require.True(t, bytes.Equal(msg, bytes.Join(kh.kept, nil)), "bytes kept from Data changed afterwards")
			}
			require.Greater(t, len(kh.kept), 1)
		})
	}
}
