//go:build unix

package conformance

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// bound is the longest the suite waits for anything, so that a broken loop
// fails a case instead of hanging the test binary.
const bound = 5 * time.Second

// tick is how often a loop driven by runUntil is woken while the suite
// waits for a condition.
const tick = 5 * time.Millisecond

// openLoop opens a loop for one case and closes it when the case ends,
// unless the case closed it itself through the returned closer.
func openLoop(t testing.TB, open func() (loop.Loop, error)) (loop.Loop, *closer) {
	t.Helper()
	l, err := open()
	require.NoError(t, err, "open a loop")
	require.NotNil(t, l, "open returned a nil loop and no error")
	c := &closer{l: l}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, c
}

// closer closes a case's loop once.
type closer struct {
	l      loop.Loop
	mu     sync.Mutex
	closed bool
}

// Close calls l.Close unless already done, giving up after bound.
func (c *closer) Close() error { return c.close(true) }

// CloseInline calls l.Close on the calling goroutine, for a callback that
// closes its own loop.
func (c *closer) CloseInline() error { return c.close(false) }

func (c *closer) close(bounded bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if !bounded {
		return c.l.Close()
	}
	return closeBounded(c.l)
}

// errCloseHung is returned by closeBounded for a Close that does not
// return; the goroutine running it is abandoned.
var errCloseHung = errors.New("Close did not return within " + bound.String())

// closeBounded calls l.Close, giving up after bound.
func closeBounded(l loop.Loop) error {
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(bound):
		return errCloseHung
	}
}

// runner is a loop running Run on a goroutine of its own.
type runner struct {
	l    loop.Loop
	gid  uint64
	done chan error
	once sync.Once
}

// startRun runs l.Run on a new goroutine. At cleanup (before the loop is
// closed) it stops the loop and requires Run to return nil promptly.
func startRun(t testing.TB, l loop.Loop) *runner {
	t.Helper()
	r := &runner{l: l, done: make(chan error, 1)}
	started := make(chan uint64)
	go func() {
		started <- goid()
		r.done <- l.Run()
	}()
	r.gid = <-started
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop stops the loop (once) and waits, bounded, for Run to return nil.
func (r *runner) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.l.Stop()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run returned %v after Stop, want nil", err)
			}
		case <-time.After(bound):
			t.Errorf("Run did not return within %v of Stop", bound)
		}
	})
}

// do runs fn on the goroutine of a running loop (through Post) and waits,
// bounded, until it has run. Watch, Timer, Signal and the watchers' methods
// of a running loop are called this way.
func do(t testing.TB, l loop.Loop, fn func()) {
	t.Helper()
	ran := make(chan struct{})
	require.NoError(t, l.Post(func() { fn(); close(ran) }), "Post")
	wait(t, ran, "a posted function to run on the running loop")
}

// wait receives from ch, failing the case after bound.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("timed out after %v waiting for %s", bound, what)
		var zero T
		return zero
	}
}

// nudge keeps waking l (a repeating timer and, in case timers are broken,
// a Post from another goroutine) so that RunOnce(true) returns even when
// the event a case waits for never comes. The returned func undoes it and
// must run on the loop goroutine.
func nudge(l loop.Loop) func() {
	tm := l.Timer(tick, tick, func() {})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(4 * tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = l.Post(func() {})
			}
		}
	}()
	return func() {
		tm.Stop()
		close(done)
		wg.Wait()
	}
}

// runUntil drives l on the calling goroutine with RunOnce(true) until cond
// holds, failing after bound.
func runUntil(t testing.TB, l loop.Loop, what string, cond func() bool) {
	t.Helper()
	undo := nudge(l)
	defer undo()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		require.NoError(t, l.RunOnce(true), "RunOnce(true)")
	}
}

// runFor drives l on the calling goroutine with RunOnce(true) for d.
func runFor(t testing.TB, l loop.Loop, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	runUntil(t, l, "time to pass", func() bool { return !time.Now().Before(end) })
}

// runNoWait runs one RunOnce(false), failing if it blocks.
func runNoWait(t testing.TB, l loop.Loop) {
	t.Helper()
	var blocked atomic.Bool
	wd := time.AfterFunc(bound, func() {
		blocked.Store(true)
		_ = l.Post(func() {})
		l.Stop()
	})
	err := l.RunOnce(false)
	wd.Stop()
	require.NoError(t, err, "RunOnce(false)")
	if blocked.Load() {
		t.Fatalf("RunOnce(false) blocked for %v with nothing ready; it must only handle what is ready", bound)
	}
}

// goid returns the current goroutine's id, parsed from its stack header
// ("goroutine 18 [running]:"). Only tests need to tell goroutines apart.
func goid() uint64 {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(s, 10, 64) // 0 if the format ever changes: cases then fail visibly
	return id
}

// fdPair is a connected pair of non-blocking, close-on-exec unix stream
// sockets, closed when the case ends unless closed before.
type fdPair struct {
	a, b int
}

func socketpair(t testing.TB) *fdPair {
	t.Helper()
	// ForkLock: no child may inherit the fds before they are CLOEXEC.
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	require.NoError(t, err, "socketpair")
	for _, fd := range fds {
		require.NoError(t, unix.SetNonblock(fd, true), "set non-blocking")
	}
	p := &fdPair{a: fds[0], b: fds[1]}
	t.Cleanup(func() {
		closeFD(p.a)
		closeFD(p.b)
	})
	return p
}

// closeFD closes fd if it is still open (a case may have closed it).
func closeFD(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// closeA closes p.a now, so cleanup leaves the number alone.
func (p *fdPair) closeA(t testing.TB) {
	t.Helper()
	require.NoError(t, unix.Close(p.a), "close")
	p.a = -1
}

// closeB closes p.b now.
func (p *fdPair) closeB(t testing.TB) {
	t.Helper()
	require.NoError(t, unix.Close(p.b), "close")
	p.b = -1
}

// writeBytes writes n bytes to fd, which must accept them at once.
func writeBytes(t testing.TB, fd, n int) {
	t.Helper()
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i)
	}
	w, err := unix.Write(fd, buf)
	require.NoError(t, err, "write")
	require.Equal(t, n, w, "short write")
}

// drain reads fd until EAGAIN (or EOF) and returns how many bytes it read.
func drain(t testing.TB, fd int) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || (err == nil && n == 0) {
			return total
		}
		require.NoError(t, err, "read")
		total += n
	}
}

// drainQuiet reads fd until it would block and ignores errors: for
// callbacks that may run off the test goroutine.
func drainQuiet(fd int) {
	var buf [4096]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if err != nil || n == 0 {
			return
		}
	}
}

// fill writes to fd until its buffers are full (EAGAIN) and returns how
// many bytes it wrote.
func fill(t testing.TB, fd int) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := unix.Write(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return total
		}
		require.NoError(t, err, "write")
		total += n
	}
}

// fdOpen reports whether fd is an open descriptor.
func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// countFDs returns the number of open descriptors of the process and
// whether the platform can tell (Linux: /proc/self/fd).
func countFDs() (int, bool) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	return len(ents), true
}

// listFDs describes the open descriptors, for a failure message.
func listFDs() string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		b.WriteString(e.Name() + " -> " + target + "\n")
	}
	return b.String()
}

// watchProbe is the probe of requireUnsupported for CapWatch.
func watchProbe(t testing.TB, l loop.Loop) func() error {
	return func() error {
		p := socketpair(t)
		w, err := l.Watch(p.a, loop.Readable, func(loop.Events) {})
		if err == nil && w != nil {
			_ = w.Stop()
		}
		return err
	}
}

// needWatch skips the case as "n/a" if l declares CapWatch missing.
func needWatch(t testing.TB, l loop.Loop) {
	t.Helper()
	requireUnsupported(t, l, loop.CapWatch, watchProbe(t, l))
}
