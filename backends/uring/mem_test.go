//go:build linux && uring

package uring

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// BenchmarkIdleWatch measures what the loop holds in the Go heap for each
// armed, idle watch (a socket with a poll request in the kernel and no
// readiness): the watcher, its slot, and the loop's share of its batch
// buffers, after 1,000 watches were made and armed. The kernel's own
// memory for the request is not in the process's RSS. It reports B/watch;
// the reactor's idle connection adds its own state on top (package
// reactor).
func BenchmarkIdleWatch(b *testing.B) {
	const n = 1000
	fds := make([]int, 0, 2*n)
	for range n {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(b, err)
		fds = append(fds, p[0], p[1])
	}
	b.Cleanup(func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	})
	cb := func(loop.Events) {}
	ws := make([]loop.IOWatcher, n)
	var perWatch float64
	for b.Loop() {
		l, err := New()
		require.NoError(b, err)
		clear(ws)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range ws {
			ws[i], err = l.Watch(fds[2*i], loop.Readable, cb)
			require.NoError(b, err)
		}
		require.NoError(b, l.RunOnce(false)) // the requests go to the kernel
		runtime.GC()
		runtime.ReadMemStats(&after)
		perWatch = float64(after.HeapAlloc-before.HeapAlloc) / n
		for _, w := range ws {
			require.NoError(b, w.Stop())
		}
		require.NoError(b, l.Close())
	}
	b.ReportMetric(perWatch, "B/watch")
}
