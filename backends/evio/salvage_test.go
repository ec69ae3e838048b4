//go:build linux

package evio_test

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/evio"
)

// taken is the descriptor a test put at the number evio closed.
type taken struct {
	epfd, fd int
	dup      int // the number the descriptor got
	ino      uint64
	err      error
}

// TestSalvageAfterFDReuse: evio closes a stream's fd when it reads the
// peer's EOF, and another thread takes the number before the backend can
// delete evio's epoll registration of the socket under it. The stream must
// still be writable, as net's is after the peer's CloseWrite, the stale
// registration must be gone (evio's poller would report the EOF for ever),
// and the descriptor that took the number must be untouched.
func TestSalvageAfterFDReuse(t *testing.T) {
	checkClean(t)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			for range 5 {
				salvageAfterReuse(t, network)
			}
		})
	}
}

func salvageAfterReuse(t *testing.T, network string) {
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer func() { _, _ = unix.Close(p[0]), unix.Close(p[1]) }()
	got := make(chan taken, 1)
	undo := evio.OnSalvage(func(epfd, fd int) {
		n, err := unix.FcntlInt(uintptr(p[0]), unix.F_DUPFD_CLOEXEC, fd)
		var st unix.Stat_t
		if err == nil {
			err = unix.Fstat(n, &st)
		}
		got <- taken{epfd: epfd, fd: fd, dup: n, ino: st.Ino, err: err}
	})
	t.Cleanup(undo)
	_, c, peer := pair(t, network)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, peer.SetDeadline(time.Now().Add(10*time.Second)))

	rerr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16)) // reading, so evio reads the EOF
		rerr <- err
	}()
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, peer.(interface{ CloseWrite() error }).CloseWrite())
	require.ErrorIs(t, <-rerr, io.EOF)

	var tk taken
	select {
	case tk = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("evio never closed the fd at the EOF")
	}
	require.NoError(t, tk.err)
	defer func() { assert.NoError(t, unix.Close(tk.dup)) }()
	require.Equal(t, tk.fd, tk.dup, "the closed number was not free")

	_, err := c.Write([]byte("after reuse"))
	require.NoError(t, err, "the stream ended with evio's fd")
	assert.NotContains(t, evio.EpollTargets(t, tk.epfd), tk.fd, "evio's poller still watches the closed number")
	require.NoError(t, c.Close())
	back, err := io.ReadAll(peer)
	require.NoError(t, err)
	assert.Equal(t, "after reuse", string(back))

	var st unix.Stat_t
	require.NoError(t, unix.Fstat(tk.fd, &st))
	assert.Equal(t, tk.ino, st.Ino, "the descriptor that took the number was replaced")
}
