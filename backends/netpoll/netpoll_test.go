//go:build linux || darwin

package netpoll_test

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/netpoll"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

func open() (loop.Loop, error) { return netpoll.New() }

func TestConformance(t *testing.T) { conformance.TestLoop(t, open) }

func BenchmarkConformance(b *testing.B) { conformance.BenchmarkLoop(b, open) }

func TestRegistered(t *testing.T) {
	assert.Contains(t, loop.Names(), "netpoll")
	l, err := loop.Open("netpoll")
	require.NoError(t, err)
	assert.Equal(t, "netpoll", l.Name())
	assert.Empty(t, loop.UnsupportedOf(l), "netpoll lacks no capability")
	_, edge := l.(loop.EdgeWatcher)
	assert.True(t, edge, "netpoll implements loop.EdgeWatcher")
	require.NoError(t, l.Close())
}

func socketpair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fds[0]); _ = unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// runUntil drives l until cond holds (a repeating timer bounds each wait).
func runUntil(t testing.TB, l loop.Loop, cond func() bool) {
	t.Helper()
	tick := l.Timer(time.Millisecond, time.Millisecond, func() {})
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out")
		require.NoError(t, l.RunOnce(true))
	}
}

// TestWatchSetsNonblocking: Watch puts a blocking fd in non-blocking mode,
// which the runtime netpoller needs.
func TestWatchSetsNonblocking(t *testing.T) {
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	a, b := socketpair(t)
	w, err := l.Watch(a, loop.Readable, func(loop.Events) {})
	require.NoError(t, err)
	flags, err := unix.FcntlInt(uintptr(a), unix.F_GETFL, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.O_NONBLOCK)
	require.NoError(t, w.Stop())
	_ = b
}

// TestWatchRegularFile: the netpoller cannot watch a regular file on Linux;
// Watch says so (EPERM, as epoll does) and leaks no fd.
func TestWatchRegularFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("platform fact: kqueue can watch regular files, epoll cannot; this checks the Linux error")
	}
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer f.Close()
	before, _ := os.ReadDir("/proc/self/fd")
	_, err = l.Watch(int(f.Fd()), loop.Readable, func(loop.Events) {})
	assert.ErrorIs(t, err, syscall.EPERM)
	after, _ := os.ReadDir("/proc/self/fd")
	assert.Equal(t, len(before), len(after), "the failed Watch leaked its duplicate fd")
}

// TestTwoWatchersOneFD: each watcher has its own duplicate, so two
// watchers on one fd both see its readiness.
func TestTwoWatchersOneFD(t *testing.T) {
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	a, b := socketpair(t)
	var n1, n2 int
	w1, err := l.Watch(a, loop.Readable, func(loop.Events) { n1++ })
	require.NoError(t, err)
	w2, err := l.WatchEdge(a, loop.Readable, func(loop.Events) { n2++ })
	require.NoError(t, err)
	_, err = unix.Write(b, []byte{1})
	require.NoError(t, err)
	runUntil(t, l, func() bool { return n1 > 0 && n2 > 0 })
	require.NoError(t, w1.Stop())
	require.NoError(t, w2.Stop())
}

// TestEdgeEventAllocs: in steady state an edge-triggered event allocates
// nothing in the loop: a write, the waiter's report, the dispatch.
func TestEdgeEventAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	l, err := netpoll.New()
	require.NoError(t, err)
	defer l.Close()
	a, b := socketpair(t)
	var buf [16]byte
	got := 0
	w, err := l.WatchEdge(a, loop.Readable, func(loop.Events) {
		n, _ := unix.Read(a, buf[:])
		got += n
	})
	require.NoError(t, err)
	defer w.Stop()
	one := []byte{1}
	tick := l.Timer(time.Millisecond, time.Millisecond, func() {}) // bounds RunOnce
	defer tick.Stop()
	roundTrip := func() {
		want := got + 1
		if _, err := unix.Write(b, one); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for got < want && time.Now().Before(deadline) {
			_ = l.RunOnce(true)
		}
	}
	for range 100 { // warm up the slices
		roundTrip()
	}
	allocs := testing.AllocsPerRun(1000, roundTrip)
	t.Logf("allocations per edge event round trip: %.2f", allocs)
	assert.Less(t, allocs, 0.5, "an edge event should not allocate")
}
