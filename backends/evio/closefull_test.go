//go:build linux

package evio_test

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/evio"
)

func mustRaw(t *testing.T, c net.Conn) syscall.RawConn {
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	return rc
}

// writable reports whether c's socket polls writable.
func writable(t *testing.T, c net.Conn) bool {
	ok := false
	require.NoError(t, mustRaw(t, c).Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(p, 0)
		ok = err == nil && n > 0
	}))
	return ok
}

// fillUnwritable writes to c, in writes the kernel takes whole, until its
// socket no longer polls writable: evio holds nothing, but its close
// waits for an event the socket gives only once the peer reads. It
// returns how many bytes were written.
func fillUnwritable(t *testing.T, c net.Conn, chunk int) int {
	p := make([]byte, chunk)
	total := 0
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(5*time.Second)))
	for i := 0; writable(t, c); i++ {
		require.Less(t, i, 4096, "the socket stayed writable")
		fillPattern(int64(total), p)
		n, err := c.Write(p)
		require.NoError(t, err)
		total += n
	}
	return total
}

// closeReleases closes c and checks that its socket was released (evio's
// descriptor and the stream's duplicate closed) before Close returned.
func closeReleases(t *testing.T, c net.Conn) {
	before := openFDs(t)
	require.NoError(t, c.Close())
	assert.Equal(t, before-2, openFDs(t), "descriptors left open once Close returned")
}

// TestCloseUnwritableUnix: Close of a unix conn whose socket polls
// unwritable (its peer has not read what it was sent) takes effect at
// once, as close(2) does for net: the socket is released before Close
// returns, the peer's next write fails with EPIPE, and its reads get every
// byte, then EOF.
func TestCloseUnwritableUnix(t *testing.T) {
	checkClean(t)
	_, c, peer := pair(t, "unix")
	require.NoError(t, peer.SetDeadline(time.Now().Add(10*time.Second)))
	total := fillUnwritable(t, c, 16<<10)
	closeReleases(t, c)
	_, err := peer.Write([]byte("x"))
	assert.ErrorIs(t, err, syscall.EPIPE, "the peer's write after Close")
	got, err := io.ReadAll(peer)
	require.NoError(t, err)
	require.Len(t, got, total)
	requirePattern(t, got)
}

// smallPair is pair("tcp") with small buffers on both sides, which keep
// the send buffer full: with the kernel's, it drains into the peer's
// growing receive buffer.
func smallPair(t *testing.T) (c, peer net.Conn) {
	small := func(opt int) func(string, string, syscall.RawConn) error {
		return func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 4096) }); cerr != nil {
				return cerr
			}
			return err
		}
	}
	_, c, peer = pairWith(t, "tcp", &net.Dialer{Control: small(unix.SO_RCVBUF)})
	require.NoError(t, small(unix.SO_SNDBUF)("", "", mustRaw(t, c)))
	require.NoError(t, peer.SetDeadline(time.Now().Add(10*time.Second)))
	return c, peer
}

// fillFull fills c's send buffer and checks that it stays full.
func fillFull(t *testing.T, c net.Conn) int {
	total := fillUnwritable(t, c, 1<<10)
	time.Sleep(20 * time.Millisecond) // the peer's window closes
	require.False(t, writable(t, c), "the send buffer drained with nobody reading")
	return total
}

// TestCloseUnwritableTCP: Close of a TCP conn whose send buffer its peer
// has not read queues the FIN behind the bytes at once, as close(2) does:
// the socket is released before Close returns, and the peer reads every
// byte, then EOF.
func TestCloseUnwritableTCP(t *testing.T) {
	checkClean(t)
	c, peer := smallPair(t)
	total := fillFull(t, c)
	closeReleases(t, c)
	got, err := io.ReadAll(peer)
	require.NoError(t, err)
	require.Len(t, got, total)
	requirePattern(t, got)
}

// TestCloseUnwritableResetTCP: Close of a TCP conn with bytes unread and a
// send buffer its peer has not read resets the connection at once, as
// net's does (close(2) with data unread): the socket is released before
// Close returns and the peer has the reset without reading first.
func TestCloseUnwritableResetTCP(t *testing.T) {
	checkClean(t)
	c, peer := smallPair(t)
	_, err := peer.Write([]byte("unread"))
	require.NoError(t, err)
	fillFull(t, c)
	closeReleases(t, c)
	var errno syscall.Errno
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The RST may lag Close by a softirq on a loaded machine: poll
		// the peer for it, without reading, for a bounded time.
		var soErr int
		require.NoError(t, mustRaw(t, peer).Control(func(fd uintptr) {
			soErr, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		}))
		if soErr != 0 {
			errno = syscall.Errno(soErr)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	assert.True(t, errors.Is(errno, syscall.ECONNRESET), "the peer's pending error is %v, not a reset", errno)
}

// TestHeldChunkThenEOF: when evio reads the peer's EOF, it has written the
// chunk it held for the stream (it reads only with nothing to write), even
// if the kick has not yet noticed: the stream must not wait for it any
// more. A CloseWrite then sends the FIN at once instead of waiting, for
// ever, for a drain nobody would report.
func TestHeldChunkThenEOF(t *testing.T) {
	checkClean(t)
	c, peer := heldChunkWritten(t)
	require.NoError(t, peer.(*net.TCPConn).CloseWrite())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, c.(interface{ CloseWrite() error }).CloseWrite())
	_, err = peer.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the peer did not get the FIN")
}

// TestCloseWriteAfterChunkWritten: a CloseWrite after evio has written
// the chunk it held, before the kick has noticed, sends the FIN at once
// (net's CloseWrite after its write returned does), instead of waiting
// for the kick.
func TestCloseWriteAfterChunkWritten(t *testing.T) {
	checkClean(t)
	c, peer := heldChunkWritten(t)
	require.NoError(t, c.(interface{ CloseWrite() error }).CloseWrite())
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err := peer.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the peer did not get the FIN")
}

// heldChunkWritten makes c's Write hand evio a chunk (its deadline
// releases it while the small buffers are full), has the peer read every
// byte c took, so that evio has written the chunk, and keeps the kick from
// noticing that (SkipDrainCheck, set before the hub opens).
func heldChunkWritten(t *testing.T) (c, peer net.Conn) {
	t.Cleanup(evio.SkipDrainCheck()) // runs after the hub's close
	c, peer = smallPair(t)
	p, n := writeUntilDeadline(t, c)
	got := make([]byte, n)
	_, err := io.ReadFull(peer, got)
	require.NoError(t, err)
	require.Equal(t, p[:n], got)
	return c, peer
}

// TestCloseWriteDetachedHeld: a stream detached at the peer's EOF whose
// Write found the kernel full holds the rest until its socket is
// writable; a CloseWrite meanwhile must send its FIN once that is
// written, as it does while evio holds the chunk.
func TestCloseWriteDetachedHeld(t *testing.T) {
	checkClean(t)
	c, peer := smallPair(t)
	require.NoError(t, peer.(*net.TCPConn).CloseWrite())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	p, n := writeUntilDeadline(t, c)
	require.NoError(t, c.(interface{ CloseWrite() error }).CloseWrite())
	got, err := io.ReadAll(peer)
	require.NoError(t, err, "the peer did not get the FIN after the bytes")
	require.Equal(t, p[:n], got)
}

// writeUntilDeadline writes 8 MiB of the pattern to c, whose small
// buffers fill first, until a deadline 50 ms on releases the write; it
// returns what it wrote and how many bytes c took.
func writeUntilDeadline(t *testing.T, c net.Conn) ([]byte, int) {
	p := make([]byte, 8<<20)
	fillPattern(0, p)
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	n, err := c.Write(p)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the small buffers took 8 MiB")
	return p, n
}

// requirePattern checks that got is the pattern's first len(got) bytes.
func requirePattern(t *testing.T, got []byte) {
	want := make([]byte, len(got))
	fillPattern(0, want)
	require.Equal(t, want, got)
}
