//go:build linux

package evio

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"
)

// ctxConn is an evio.Conn that only carries its context.
type ctxConn struct{ ctx any }

var _ evio.Conn = (*ctxConn)(nil)

func (c *ctxConn) Context() any       { return c.ctx }
func (c *ctxConn) SetContext(ctx any) { c.ctx = ctx }
func (*ctxConn) AddrIndex() int       { return 0 }
func (*ctxConn) LocalAddr() net.Addr  { return nil }
func (*ctxConn) RemoteAddr() net.Addr { return nil }
func (*ctxConn) Wake()                {}

// TestDetachedKeepsEvioReadError: evio can still read a stream that left
// its poller (CloseRead) for an event of its current batch, and close its
// fd at what it read. The pending socket error that read took (the peer's
// reset) is the kernel's to report once: the stream reports it to its
// next read, and then the kernel answers. A plain EOF, or EPIPE (evio's
// write failed), leaves nothing to report.
func TestDetachedKeepsEvioReadError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"reset", syscall.ECONNRESET, syscall.ECONNRESET},
		{"eof", nil, syscall.EAGAIN},
		{"epipe", syscall.EPIPE, syscall.EAGAIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			defer func() { _, _ = unix.Close(sp[0]), unix.Close(sp[1]) }()
			st := &stream{sv: &server{}, dfd: int32(sp[0]), fd: -1, detached: true, gone: true, evioHoldsFD: true, evioGone: true}
			st.sv.closedConn(&ctxConn{ctx: st}, tc.err)
			_, err = st.ReadDirect(make([]byte, 8))
			assert.ErrorIs(t, err, tc.want)
			_, err = st.ReadDirect(make([]byte, 8))
			assert.ErrorIs(t, err, syscall.EAGAIN, "reported once, then the kernel answers")
		})
	}
}
