//go:build linux && uring

package chaos_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	_ "github.com/evhub/evhub/backends/uring"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/loop/chaos"
)

// TestCompletionChaos: through the wrapper, receives on io_uring come
// late and cut up, and still every byte arrives once, in order, also
// across a StopRecv and a new Recv mid-stream; StopRecv hands over what
// was held back before it returns.
func TestCompletionChaos(t *testing.T) {
	inner, err := loop.Open("uring")
	require.NoError(t, err)
	l := chaos.WrapOptions(inner, 7, chaos.Options{Delay: 300})
	defer func() { require.NoError(t, l.Close()) }()
	comp, ok := l.(loop.Completer)
	require.True(t, ok)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	var got []byte
	calls := 0
	r := loop.ReceiverFunc(func(fd int, p []byte, err error) {
		assert.Equal(t, fds[0], fd)
		assert.NoError(t, err)
		got = append(got, p...)
		calls++
	})
	run := func(cond func() bool) {
		deadline := time.Now().Add(5 * time.Second)
		for !cond() && time.Now().Before(deadline) {
			tm := l.Timer(time.Millisecond, 0, func() {})
			require.NoError(t, l.RunOnce(true))
			tm.Stop()
		}
		require.True(t, cond(), "timed out")
	}

	require.NoError(t, comp.Recv(fds[0], r))
	var want []byte
	const n = 300
	for i := range n {
		msg := []byte("message " + strconv.Itoa(i) + ";")
		want = append(want, msg...)
		_, err := unix.Write(fds[1], msg)
		require.NoError(t, err)
		run(func() bool { return len(got) == len(want) })
		if i%10 == 5 {
			// Mid-stream: bytes sent and taken (maybe held back);
			// StopRecv must give whatever the receive took, the rest
			// stays in the socket for the next Recv.
			_, err := unix.Write(fds[1], []byte("between;"))
			require.NoError(t, err)
			want = append(want, "between;"...)
			require.NoError(t, l.RunOnce(false))
			require.NoError(t, comp.StopRecv(fds[0]))
			require.NoError(t, comp.Recv(fds[0], r))
			run(func() bool { return len(got) == len(want) })
		}
	}
	assert.Equal(t, string(want), string(got))
	assert.Greater(t, calls, n+n/10, "some chunks were cut up")
	require.NoError(t, comp.StopRecv(fds[0]))
}
