//go:build linux && uring

package uring

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const bound = 5 * time.Second

func newLoop(t testing.TB) *Loop {
	t.Helper()
	l, err := New()
	require.NoError(t, err, "New")
	t.Cleanup(func() { assert.NoError(t, l.Close(), "Close") })
	return l
}

func pair(t testing.TB) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err, "socketpair")
	t.Cleanup(func() {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
	})
	return fds[0], fds[1]
}

// runUntil drives l with RunOnce(true), kept awake by a ticking timer,
// until cond holds.
func runUntil(t testing.TB, l *Loop, cond func() bool) {
	t.Helper()
	tick := l.Timer(time.Millisecond, time.Millisecond, func() {})
	defer tick.Stop()
	deadline := time.Now().Add(bound)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "condition not met within %v", bound)
		require.NoError(t, l.RunOnce(true))
	}
}

// fdKinds counts the process's fds by the kind the loop makes.
func fdKinds(t testing.TB) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		for _, k := range []string{"[io_uring]", "[eventfd]"} {
			if strings.Contains(target, k) {
				kinds[k]++
			}
		}
	}
	return kinds
}

// mappings counts the process's mappings of io_uring memory.
func mappings(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	return strings.Count(string(b), "io_uring")
}

// TestFDs: a loop holds one ring fd, its two mappings and one eventfd, and
// Close releases them all.
func TestFDs(t *testing.T) {
	before, beforeMaps := fdKinds(t), mappings(t)
	l, err := New()
	require.NoError(t, err)
	during := fdKinds(t)
	assert.Equal(t, before["[io_uring]"]+1, during["[io_uring]"], "ring fds")
	assert.Equal(t, before["[eventfd]"]+1, during["[eventfd]"], "eventfds")
	assert.Equal(t, beforeMaps+2, mappings(t), "the SQ/CQ ring and the SQE array")
	a, b := pair(t)
	_, err = unix.Write(b, []byte{1})
	require.NoError(t, err)
	fired := 0
	_, err = l.watchEdge(a, loop.Readable, func(loop.Events) { fired++ })
	require.NoError(t, err)
	require.NoError(t, l.Post(func() {}))
	runUntil(t, l, func() bool { return fired > 0 })
	require.NoError(t, l.Close())
	assert.Equal(t, before, fdKinds(t), "Close must release every fd the loop made")
	assert.Equal(t, beforeMaps, mappings(t), "Close must unmap the rings")
	require.NoError(t, l.Close(), "a second Close is a no-op")
}

// TestStaleCompletion: a completion collected in the same batch as the
// Stop of its watcher, and one of a request replaced by Modify, are
// dropped by the generation in user_data; a new watcher in the recycled
// slot is not called for them.
func TestStaleCompletion(t *testing.T) {
	l := newLoop(t)
	a, b := pair(t)
	_, err := unix.Write(b, []byte{1})
	require.NoError(t, err)
	var calls [2]int
	w1, err := l.Watch(a, loop.Readable, func(loop.Events) { calls[0]++ })
	require.NoError(t, err)
	w1i := w1.(*watcher)
	// Submit the request and let it complete, without dispatching.
	l.flushArms()
	require.NoError(t, l.r.enter(false, -1))
	require.Eventually(t, l.r.ready, bound, time.Millisecond, "the poll of a ready fd completes")
	require.NoError(t, w1.Stop())
	w2, err := l.Watch(a, loop.Readable, func(loop.Events) { calls[1]++ })
	require.NoError(t, err)
	assert.Equal(t, w1i.slot, w2.(*watcher).slot, "the slot is recycled")
	require.NoError(t, l.RunOnce(false))
	assert.Zero(t, calls[0], "a stopped watcher's collected completion ran")
	runUntil(t, l, func() bool { return calls[1] > 0 })
	assert.Zero(t, calls[0])
	require.NoError(t, w2.Stop())
}

// TestStopReleasesFile: a stopped watcher's request is cancelled at once,
// even outside Run, so that closing the fd really closes the socket (a
// pending poll request holds a reference to the file): the peer sees EOF.
func TestStopReleasesFile(t *testing.T) {
	for _, edge := range []bool{false, true} {
		l := newLoop(t)
		a, b := pair(t)
		watch := l.Watch
		if edge {
			watch = l.watchEdge
		}
		w, err := watch(a, loop.Readable, func(loop.Events) {})
		require.NoError(t, err)
		require.NoError(t, l.RunOnce(false)) // the request is in the kernel
		require.NoError(t, w.Stop())
		require.NoError(t, unix.Close(a))
		var buf [1]byte
		eof := false
		for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			n, err := unix.Read(b, buf[:])
			if err == nil && n == 0 {
				eof = true
				break
			}
		}
		assert.True(t, eof, "edge=%v: the peer of a closed, stopped fd must see EOF", edge)
	}
}

// TestStopReleasesFileFromAnotherThread: a poll submitted from one
// thread and stopped (or replaced by Modify) from another holds the fd's
// file until its completion has run as task work on the first thread;
// Stop waits for every such completion, so the peer sees the close at
// once, as with net.
func TestStopReleasesFileFromAnotherThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l := newLoop(t)
	for i := range 100 {
		a, b := pair(t)
		w, err := l.Watch(a, loop.Readable, func(loop.Events) {})
		require.NoError(t, err)
		submitted, release := make(chan error), make(chan struct{})
		go func() {
			runtime.LockOSThread() // another thread, kept alive (parked) below
			defer runtime.UnlockOSThread()
			submitted <- l.RunOnce(false)
			<-release
		}()
		require.NoError(t, <-submitted)
		if i%2 == 1 {
			// A request replaced by Modify from this thread: its
			// completion, too, is task work of the other one.
			require.NoError(t, w.Modify(0))
			require.NoError(t, w.Modify(loop.Readable))
			require.NoError(t, l.RunOnce(false))
		}
		require.NoError(t, w.Stop())
		require.NoError(t, unix.Close(a))
		var buf [1]byte
		n, err := unix.Read(b, buf[:])
		close(release)
		require.NoError(t, err, "round %d: the peer of a closed, stopped fd must see EOF at once", i)
		require.Zero(t, n, "round %d", i)
	}
}

// TestCancelledByKernel: a request that the kernel ends on its own (here
// a cancellation nobody asked for, as when the thread that submitted it
// exits) is submitted again, so the watcher keeps firing.
func TestCancelledByKernel(t *testing.T) {
	l := newLoop(t)
	a, b := pair(t)
	fired := 0
	w, err := l.watchEdge(a, loop.Readable, func(loop.Events) { fired++ })
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false))
	wi := w.(*watcher)
	require.True(t, wi.is(fLive))
	// Cancel it behind the watcher's back, keeping its generation.
	s := l.sqe()
	s.opcode = opAsyncCancel
	s.addr = watchData(wi.slot, wi.gen)
	s.userData = ignoreData
	cancelled := wi.gen
	for range 20 {
		require.NoError(t, l.RunOnce(false))
		time.Sleep(time.Millisecond)
	}
	assert.Equal(t, cancelled, wi.gen, "the watcher's generation is unchanged")
	assert.Zero(t, fired)
	_, err = unix.Write(b, []byte{1})
	require.NoError(t, err)
	runUntil(t, l, func() bool { return fired > 0 })
	require.NoError(t, w.Stop())
}

// withSetup replaces io_uring_setup and the sysctl file for one test.
func withSetup(t *testing.T, setup func(uint32, *params) (int, error), disabled string) {
	t.Helper()
	oldSetup, oldFile := setupSyscall, disabledFile
	t.Cleanup(func() { setupSyscall, disabledFile = oldSetup, oldFile })
	if setup != nil {
		setupSyscall = setup
	}
	disabledFile = filepath.Join(t.TempDir(), "io_uring_disabled")
	if disabled != "" {
		require.NoError(t, os.WriteFile(disabledFile, []byte(disabled+"\n"), 0o600))
	}
}

func failSetup(errno unix.Errno) func(uint32, *params) (int, error) {
	return func(uint32, *params) (int, error) { return -1, errno }
}

// TestUnsupported: where io_uring cannot run, New (and loop.Open) fail
// with an error wrapping errors.ErrUnsupported that names the cause, and
// leave no fd behind.
func TestUnsupported(t *testing.T) {
	realSetup := setupSyscall
	cases := []struct {
		name     string
		setup    func(uint32, *params) (int, error)
		disabled string
		errno    error // also wrapped, if not nil
		want     string
	}{
		{"seccomp", failSetup(unix.EPERM), "0", unix.EPERM, "seccomp"},
		{"no sysctl file", failSetup(unix.EPERM), "", unix.EPERM, "seccomp"},
		{"disabled=1", failSetup(unix.EPERM), "1", unix.EPERM, "io_uring_disabled = 1"},
		{"disabled=2", nil, "2", nil, "io_uring_disabled = 2"},
		{"old kernel", failSetup(unix.ENOSYS), "", unix.ENOSYS, "no io_uring"},
		{"bad params", failSetup(unix.EINVAL), "", unix.EINVAL, "5.13"},
		{"no EXT_ARG", func(n uint32, p *params) (int, error) {
			fd, err := realSetup(n, p)
			p.features &^= featExtArg
			return fd, err
		}, "", nil, "IORING_FEAT_EXT_ARG"},
		{"no multishot poll", func(n uint32, p *params) (int, error) {
			fd, err := realSetup(n, p)
			p.features &^= featRsrcTags
			return fd, err
		}, "", nil, "multishot poll"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			withSetup(t, c.setup, c.disabled)
			before := fdKinds(t)
			l, err := New()
			require.Error(t, err)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, errors.ErrUnsupported)
			var ue *loop.UnsupportedError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, Name, ue.Backend)
			assert.Contains(t, err.Error(), c.want)
			if c.errno != nil {
				assert.ErrorIs(t, err, c.errno)
			}
			assert.Equal(t, before, fdKinds(t), "a failed New must close what it opened")
			_, err = loop.Open(Name)
			assert.ErrorIs(t, err, errors.ErrUnsupported, "loop.Open")
			t.Logf("%v", err)
		})
	}
	t.Run("ENOMEM is not unsupported", func(t *testing.T) {
		withSetup(t, failSetup(unix.ENOMEM), "0")
		_, err := New()
		require.Error(t, err)
		assert.NotErrorIs(t, err, errors.ErrUnsupported)
		assert.ErrorIs(t, err, unix.ENOMEM)
	})
}

// TestWithoutCoopTaskrun: a kernel older than 5.19 refuses
// IORING_SETUP_COOP_TASKRUN and TASKRUN_FLAG with EINVAL; the loop then
// runs on a ring without them (the kernel interrupts the submitting thread
// for each completion instead), and a watch still fires.
func TestWithoutCoopTaskrun(t *testing.T) {
	realSetup := setupSyscall
	var flags []uint32
	withSetup(t, func(n uint32, p *params) (int, error) {
		flags = append(flags, p.flags)
		if p.flags&(setupCoopTask|setupTaskFlag) != 0 {
			return -1, unix.EINVAL
		}
		return realSetup(n, p)
	}, "0")
	l, err := New()
	require.NoError(t, err)
	defer l.Close()
	require.Len(t, flags, 2)
	assert.NotZero(t, flags[0]&setupCoopTask, "first try asks for COOP_TASKRUN")
	assert.Zero(t, flags[1]&(setupCoopTask|setupTaskFlag), "second try asks for neither")
	fds := make([]int, 2)
	require.NoError(t, unix.Pipe2(fds, unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	fired := 0
	w, err := l.Watch(fds[0], loop.Readable, func(loop.Events) { fired++ })
	require.NoError(t, err)
	_, err = unix.Write(fds[1], []byte{1})
	require.NoError(t, err)
	runUntil(t, l, func() bool { return fired > 0 })
	require.NoError(t, w.Stop())
}

// TestSingleIssuerRefusesOtherThreads records why the loop does not set
// IORING_SETUP_SINGLE_ISSUER (and so cannot have DEFER_TASKRUN): the
// kernel binds such a ring to the thread that created it and refuses
// io_uring_enter from any other with EEXIST, while the loop goroutine is
// never locked to a thread and moves between them.
func TestSingleIssuerRefusesOtherThreads(t *testing.T) {
	const singleIssuer, deferTaskrun = 1 << 12, 1 << 13
	type made struct {
		fd  int
		err error
	}
	madec := make(chan made, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Locked until the end, so the other goroutine below cannot run
		// on this thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p := params{flags: singleIssuer | deferTaskrun}
		fd, err := setupSyscall(8, &p)
		madec <- made{fd, err}
		<-done
	}()
	defer wg.Wait()
	defer close(done)
	m := <-madec
	if m.err != nil {
		t.Skipf("the kernel has no single-issuer rings (Linux 6.1): %v", m.err)
	}
	defer unix.Close(m.fd)
	res := make(chan unix.Errno, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(m.fd), 0, 0, enterGetEvents, 0, 0)
		res <- e
	}()
	assert.Equal(t, unix.EEXIST, <-res, "io_uring_enter on a single-issuer ring from another thread")
}

// BenchmarkSubmit measures the pure-Go ring: n NOP requests written into
// the SQ, submitted and reaped with one io_uring_enter; ns per request.
// (The design note in the package documentation compares it with the
// same loop in C on liburing.)
func BenchmarkSubmit(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			r, err := newRing(sqEntries, cqEntries)
			require.NoError(b, err)
			defer r.close()
			var cqes []cqe
			b.ResetTimer()
			for i := 0; i < b.N; i += n {
				for range n {
					s := r.get()
					s.opcode = opNop
					s.userData = ignoreData
				}
				if err := r.enter(false, -1); err != nil {
					b.Fatal(err)
				}
				cqes = r.reap(cqes[:0], 0)
				if len(cqes) != n {
					b.Fatalf("%d completions for %d NOPs", len(cqes), n)
				}
			}
		})
	}
}

// TestTableBlocks: slots across block edges keep their owners, freed
// slots are reused with the generation their last owner left, and out of
// range slots have no owner.
func TestTableBlocks(t *testing.T) {
	var tb table[int]
	n := 2*tableBlock + 3
	vals := make([]int, n)
	for i := range n {
		vals[i] = i
		slot, gen := tb.add(&vals[i], 7)
		require.Equal(t, int32(i), slot)
		require.Equal(t, uint32(7), gen, "a new slot keeps its owner's generation")
	}
	assert.Len(t, tb.blocks, 3)
	for i := range n {
		require.Same(t, &vals[i], tb.get(int32(i)))
	}
	assert.Nil(t, tb.get(int32(n)))
	assert.Nil(t, tb.get(-1))
	tb.remove(tableBlock, 9)
	assert.Nil(t, tb.get(tableBlock))
	x := -1
	slot, gen := tb.add(&x, 0)
	assert.Equal(t, int32(tableBlock), slot, "the freed slot is reused")
	assert.Equal(t, uint32(9), gen)
	assert.Same(t, &x, tb.get(tableBlock))
	seen := 0
	tb.each(func(slot int32, v *int) {
		require.Same(t, tb.get(slot), v)
		seen++
	})
	assert.Equal(t, n, seen)
}

// BenchmarkSyscall is what a system call costs on its own here, the
// figure the package documentation weighs a saved read(2) against:
// getppid (no work in the kernel) and a read(2) of an empty socket
// (EAGAIN).
func BenchmarkSyscall(b *testing.B) {
	b.Run("getppid", func(b *testing.B) {
		for range b.N {
			unix.Getppid()
		}
	})
	b.Run("read-EAGAIN", func(b *testing.B) {
		a, _ := pair(b)
		buf := make([]byte, 64)
		for range b.N {
			if _, err := unix.Read(a, buf); err != unix.EAGAIN {
				b.Fatalf("read of an empty socket: %v, want EAGAIN", err)
			}
		}
	})
}
