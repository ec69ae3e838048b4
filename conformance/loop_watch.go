//go:build unix

package conformance

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// quiet is how long a watcher must stay silent to count as not firing.
const quiet = 40 * time.Millisecond

var watchCases = []loopCase{
	{"Readable", testWatchReadable},
	{"LevelTriggered", testWatchLevelTriggered},
	{"Writable", testWatchWritable},
	{"HangUp", testWatchHangUp},
	{"Error", testWatchError},
	{"Modify", testWatchModify},
	{"Stop", testWatchStop},
	{"StopInCallback", testWatchStopInCallback},
	{"StopCollected", testWatchStopCollected},
	{"FDReuse", testWatchFDReuse},
	{"InvalidFD", testWatchInvalidFD},
	{"BadArgs", testWatchBadArgs},
	{"ManyFDs", testWatchManyFDs},
	{"LeavesFDOpen", testWatchLeavesFDOpen},
}

// watchLoop opens a loop for a watch case, or skips the case as "n/a".
func watchLoop(t *testing.T, open opener) loop.Loop {
	t.Helper()
	l, _ := openLoop(t, open)
	needWatch(t, l)
	return l
}

// recorder counts a watcher's callbacks and keeps the events they got.
type recorder struct {
	evs []loop.Events
}

func (r *recorder) cb(ev loop.Events) { r.evs = append(r.evs, ev) }
func (r *recorder) n() int            { return len(r.evs) }
func (r *recorder) last() loop.Events { return r.evs[len(r.evs)-1] }

// count returns how many callbacks got some of ev.
func (r *recorder) count(ev loop.Events) int {
	n := 0
	for _, e := range r.evs {
		if e&ev != 0 {
			n++
		}
	}
	return n
}

func checkEvents(t *testing.T, r *recorder, armed loop.Events) {
	t.Helper()
	for i, ev := range r.evs {
		if ev == 0 || ev&^armed != 0 {
			t.Errorf("callback #%d got events %v, want a non-empty subset of the armed %v", i+1, ev, armed)
		}
	}
}

// testWatchReadable: no callback while nothing is readable, Readable once
// data arrives.
func testWatchReadable(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := l.Watch(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	require.NotNil(t, w, "Watch returned a nil watcher and no error")
	assert.Equal(t, loop.Readable, w.Events(), "Events")
	runFor(t, l, quiet)
	require.Zero(t, r.n(), "a watcher fired on an fd with nothing to read")
	writeBytes(t, p.b, 1)
	runUntil(t, l, "the Readable callback", func() bool { return r.n() > 0 })
	assert.Equal(t, loop.Readable, r.last())
	require.NoError(t, w.Stop())
}

// testWatchLevelTriggered: a ready watcher fires on every iteration until
// the fd is drained, then no more.
func testWatchLevelTriggered(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := l.Watch(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	writeBytes(t, p.b, 10)
	runUntil(t, l, "the first Readable callback", func() bool { return r.n() > 0 })
	for i := range 3 {
		before := r.n()
		runNoWait(t, l)
		require.Equal(t, before+1, r.n(), "iteration %d after the first callback: a level-triggered watcher on an fd that is not drained must fire exactly once per iteration", i+1)
	}
	var buf [5]byte
	_, err = unix.Read(p.a, buf[:]) // half of it
	require.NoError(t, err)
	before := r.n()
	runNoWait(t, l)
	require.Equal(t, before+1, r.n(), "a partly drained fd must still fire")
	drain(t, p.a)
	before = r.n()
	for range 3 {
		runNoWait(t, l)
	}
	runFor(t, l, quiet)
	require.Equal(t, before, r.n(), "a drained fd must not fire")
	checkEvents(t, &r, loop.Readable)
	require.NoError(t, w.Stop())
}

// testWatchWritable: Writable fires while there is room, stops when the
// buffers are full, and fires again once the peer reads.
func testWatchWritable(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := l.Watch(p.a, loop.Writable, r.cb)
	require.NoError(t, err, "Watch")
	runUntil(t, l, "the Writable callback", func() bool { return r.n() > 0 })
	assert.Equal(t, loop.Writable, r.last())
	before := r.n()
	runNoWait(t, l)
	require.Equal(t, before+1, r.n(), "a writable fd must fire on every iteration")

	require.Positive(t, fill(t, p.a))
	runNoWait(t, l) // may still report what it saw before the fill
	before = r.n()
	runFor(t, l, quiet)
	require.Equal(t, before, r.n(), "Writable fired on an fd whose buffers are full")

	drain(t, p.b)
	runUntil(t, l, "Writable after the peer drained", func() bool { return r.n() > before })
	checkEvents(t, &r, loop.Writable)
	require.NoError(t, w.Stop())
}

// testWatchHangUp: a closed peer is reported as readiness in the armed
// direction, and the next syscall reports EOF or EPIPE.
func testWatchHangUp(t *testing.T, open opener) {
	l := watchLoop(t, open)

	p := socketpair(t)
	var r recorder
	w, err := l.Watch(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	p.closeB(t)
	runUntil(t, l, "Readable after the peer closed", func() bool { return r.n() > 0 })
	assert.Equal(t, loop.Readable, r.last())
	var buf [8]byte
	n, err := unix.Read(p.a, buf[:])
	assert.NoError(t, err, "read after hang-up")
	assert.Zero(t, n, "read after hang-up must be EOF")
	require.NoError(t, w.Stop())

	q := socketpair(t)
	var rw recorder
	w, err = l.Watch(q.a, loop.Writable, rw.cb)
	require.NoError(t, err, "Watch")
	q.closeB(t)
	runUntil(t, l, "Writable after the peer closed", func() bool { return rw.n() > 0 })
	assert.Equal(t, loop.Writable, rw.last())
	_, err = unix.Write(q.a, buf[:])
	assert.ErrorIs(t, err, syscall.EPIPE, "write after hang-up")
	require.NoError(t, w.Stop())
}

// testWatchError: a socket error (a TCP reset) is reported as readiness,
// and the next read returns the error.
func testWatchError(t *testing.T, open opener) {
	l := watchLoop(t, open)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err, "listen")
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	syscall.ForkLock.RLock()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	require.NoError(t, err, "socket")
	defer closeFD(fd)
	require.NoError(t, unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}), "connect")
	require.NoError(t, unix.SetNonblock(fd, true))

	var r recorder
	w, err := l.Watch(fd, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	c, err := ln.Accept()
	require.NoError(t, err, "accept")
	require.NoError(t, c.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c.Close()) // linger 0: the peer sends a reset
	runUntil(t, l, "Readable after a connection reset", func() bool { return r.n() > 0 })
	assert.Equal(t, loop.Readable, r.last())
	var buf [8]byte
	_, err = unix.Read(fd, buf[:])
	assert.ErrorIs(t, err, syscall.ECONNRESET, "read after a reset")
	require.NoError(t, w.Stop())
}

// testWatchModify: Modify changes the armed events; 0 pauses.
func testWatchModify(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := l.Watch(p.a, loop.Readable|loop.Writable, r.cb)
	require.NoError(t, err, "Watch")
	assert.Equal(t, loop.Readable|loop.Writable, w.Events())
	runUntil(t, l, "Writable", func() bool { return r.count(loop.Writable) > 0 })

	require.NoError(t, w.Modify(loop.Writable), "Modify(Writable)")
	assert.Equal(t, loop.Writable, w.Events())
	writeBytes(t, p.b, 1)
	runNoWait(t, l) // may report what was collected before Modify ...
	r.evs = nil
	runUntil(t, l, "three Writable callbacks", func() bool { return r.n() >= 3 })
	checkEvents(t, &r, loop.Writable) // ... but not after it

	require.NoError(t, w.Modify(0), "Modify(0)")
	assert.Equal(t, loop.Events(0), w.Events())
	r.evs = nil
	for range 3 {
		runNoWait(t, l)
	}
	runFor(t, l, quiet)
	require.Zero(t, r.n(), "a paused watcher (Modify(0)) fired")

	require.NoError(t, w.Modify(loop.Readable), "Modify(Readable)")
	assert.Equal(t, loop.Readable, w.Events())
	runUntil(t, l, "Readable after re-arming", func() bool { return r.n() > 0 })
	checkEvents(t, &r, loop.Readable)

	require.Error(t, w.Modify(0x80), "Modify with an unknown event bit")
	require.NoError(t, w.Stop())
	assert.Error(t, w.Modify(loop.Readable), "Modify of a stopped watcher")
}

// testWatchStop: no callback after Stop, also for an fd that became ready
// before it; Stop is idempotent.
func testWatchStop(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	writeBytes(t, p.b, 1)
	var r recorder
	w, err := l.Watch(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	time.Sleep(5 * time.Millisecond) // let a backend collect the readiness
	require.NoError(t, w.Stop(), "Stop")
	runFor(t, l, quiet)
	require.Zero(t, r.n(), "a watcher stopped before any iteration fired")

	w, err = l.Watch(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	runUntil(t, l, "Readable", func() bool { return r.n() > 0 })
	require.NoError(t, w.Stop(), "Stop")
	before := r.n()
	for range 3 {
		runNoWait(t, l)
	}
	runFor(t, l, quiet)
	require.Equal(t, before, r.n(), "a watcher fired after Stop")
	assert.NoError(t, w.Stop(), "a second Stop must be a no-op")
	assert.Equal(t, loop.Events(0), w.Events(), "Events of a stopped watcher")
}

// testWatchStopInCallback: a watcher that stops itself in its callback
// fires no more, though its fd stays ready.
func testWatchStopInCallback(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	writeBytes(t, p.b, 1)
	var (
		w     loop.IOWatcher
		calls int
	)
	w, err := l.Watch(p.a, loop.Readable, func(loop.Events) {
		calls++
		assert.NoError(t, w.Stop(), "Stop in the callback")
	})
	require.NoError(t, err, "Watch")
	runUntil(t, l, "the callback", func() bool { return calls > 0 })
	runFor(t, l, quiet)
	assert.Equal(t, 1, calls, "a watcher fired after stopping itself")
}

// testWatchStopCollected: several fds are ready in the same iteration and
// each callback stops all the other watchers: exactly one callback may run,
// although the others' readiness may already have been collected.
func testWatchStopCollected(t *testing.T, open opener) {
	l := watchLoop(t, open)
	stopCollected(t, l, l.Watch)
}

func stopCollected(t *testing.T, l loop.Loop, watch func(int, loop.Events, func(loop.Events)) (loop.IOWatcher, error)) {
	const n = 8
	ws := make([]loop.IOWatcher, n)
	calls := make([]int, n)
	for i := range ws {
		p := socketpair(t)
		writeBytes(t, p.b, 1)
		w, err := watch(p.a, loop.Readable, func(loop.Events) {
			calls[i]++
			for j, o := range ws {
				if j != i {
					assert.NoError(t, o.Stop(), "Stop another watcher")
				}
			}
		})
		require.NoError(t, err, "Watch")
		ws[i] = w
	}
	time.Sleep(10 * time.Millisecond) // let a backend collect all of them
	total := func() int {
		s := 0
		for _, c := range calls {
			s += c
		}
		return s
	}
	runUntil(t, l, "a callback", func() bool { return total() > 0 })
	runFor(t, l, quiet)
	fired := 0
	for _, c := range calls {
		if c > 0 {
			fired++
		}
	}
	assert.Equal(t, 1, fired, "watchers fired after another callback stopped them (calls per watcher: %v)", calls)
	for _, w := range ws {
		assert.NoError(t, w.Stop())
	}
}

// testWatchFDReuse: a new fd that gets the number of a stopped watcher's
// fd never sees the old watcher's events, nor those of the old file (kept
// open elsewhere, which is where a stale epoll registration shows).
func testWatchFDReuse(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	hold, err := unix.Dup(p.a) // keeps the old socket alive
	require.NoError(t, err, "dup")
	defer closeFD(hold)

	var oldR recorder
	w1, err := l.Watch(p.a, loop.Readable, oldR.cb)
	require.NoError(t, err, "Watch")
	writeBytes(t, p.b, 1)
	runUntil(t, l, "the first watcher", func() bool { return oldR.n() > 0 })
	drain(t, hold)
	require.NoError(t, w1.Stop())
	oldCalls := oldR.n()

	num := p.a
	p.closeA(t)
	q := socketpair(t)
	_, err = unix.FcntlInt(uintptr(q.a), unix.F_DUPFD_CLOEXEC, num)
	require.NoError(t, err, "dup onto the old number")
	t.Cleanup(func() { closeFD(num) })
	require.True(t, fdOpen(num))

	var newR recorder
	w2, err := l.Watch(num, loop.Readable, newR.cb)
	require.NoError(t, err, "Watch the reused number")
	writeBytes(t, p.b, 3) // traffic on the old socket
	runFor(t, l, quiet)
	assert.Equal(t, oldCalls, oldR.n(), "the stopped watcher fired")
	assert.Zero(t, newR.n(), "the new watcher fired for the old socket's traffic")

	writeBytes(t, q.b, 2) // traffic on the new socket
	runUntil(t, l, "the new watcher", func() bool { return newR.n() > 0 })
	assert.Equal(t, 2, drain(t, num), "the reused number must read the new socket's data")
	assert.Equal(t, oldCalls, oldR.n(), "the stopped watcher fired")
	require.NoError(t, w2.Stop())
}

// testWatchInvalidFD: Watch on an fd that is not open fails with EBADF.
func testWatchInvalidFD(t *testing.T, open opener) {
	l := watchLoop(t, open)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	closed := int(r.Fd())
	require.NoError(t, r.Close())
	require.NoError(t, w.Close())
	for _, fd := range []int{-1, closed, 1 << 24} {
		if fd == closed && fdOpen(fd) {
			continue // reused meanwhile by someone else
		}
		wt, err := l.Watch(fd, loop.Readable, func(loop.Events) {})
		assert.ErrorIs(t, err, syscall.EBADF, "Watch(%d)", fd)
		if err == nil && wt != nil {
			_ = wt.Stop()
		}
	}
	runNoWait(t, l)
}

// testWatchBadArgs: no events or a nil callback is an error, not a panic.
func testWatchBadArgs(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	for _, c := range []struct {
		what string
		ev   loop.Events
		cb   func(loop.Events)
	}{
		{"no events", 0, func(loop.Events) {}},
		{"nil callback", loop.Readable, nil},
	} {
		w, err := l.Watch(p.a, c.ev, c.cb)
		assert.Error(t, err, "Watch with %s", c.what)
		if err == nil && w != nil {
			_ = w.Stop()
		}
	}
	writeBytes(t, p.b, 1)
	runFor(t, l, quiet) // nothing half-registered may fire or panic
}

// testWatchManyFDs: many ready fds in one loop each fire, and each once
// when drained by its callback.
func testWatchManyFDs(t *testing.T, open opener) {
	l := watchLoop(t, open)
	const n = 64
	calls := make([]int, n)
	fired := 0
	for i := range n {
		p := socketpair(t)
		w, err := l.Watch(p.a, loop.Readable, func(loop.Events) {
			if calls[i] == 0 {
				fired++
			}
			calls[i]++
			drain(t, p.a)
		})
		require.NoError(t, err, "Watch #%d", i)
		t.Cleanup(func() { _ = w.Stop() })
		writeBytes(t, p.b, 1)
	}
	runUntil(t, l, "every watcher", func() bool { return fired == n })
	runFor(t, l, quiet)
	for i, c := range calls {
		assert.Equal(t, 1, c, "watcher #%d: a drained level-triggered watcher fired again", i)
	}
}

// testWatchLeavesFDOpen: the loop neither closes nor reads the caller's fd.
func testWatchLeavesFDOpen(t *testing.T, open opener) {
	l := watchLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := l.Watch(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "Watch")
	writeBytes(t, p.b, 3)
	runUntil(t, l, "Readable", func() bool { return r.n() > 0 })
	require.NoError(t, w.Stop())
	require.True(t, fdOpen(p.a), "Stop closed the caller's fd")
	assert.Equal(t, 3, drain(t, p.a), "the loop consumed the caller's data")
}

var edgeCases = []loopCase{
	{"OncePerEdge", testEdgeOncePerEdge},
	{"InitialReadiness", testEdgeInitialReadiness},
	{"Writable", testEdgeWritable},
	{"HangUp", testEdgeHangUp},
	{"Modify", testEdgeModify},
	{"StopCollected", testEdgeStopCollected},
	{"InvalidFD", testEdgeInvalidFD},
}

// edgeLoop opens a loop for an edge case, or skips the case as "n/a".
func edgeLoop(t *testing.T, open opener) (loop.Loop, loop.EdgeWatcher) {
	t.Helper()
	l, _ := openLoop(t, open)
	ew, ok := l.(loop.EdgeWatcher)
	if !ok {
		t.Skip("n/a: no edge-triggered capability (the loop does not implement loop.EdgeWatcher)")
	}
	requireUnsupported(t, l, loop.CapWatch, func() error {
		p := socketpair(t)
		w, err := ew.WatchEdge(p.a, loop.Readable, func(loop.Events) {})
		if err == nil && w != nil {
			_ = w.Stop()
		}
		return err
	})
	return l, ew
}

// settles requires that a watcher stops firing on an fd that stays ready:
// after a short settling time (a spurious edge is allowed), it must stay
// silent for a while.
func settles(t *testing.T, l loop.Loop, r *recorder, ev loop.Events, what string) {
	t.Helper()
	runFor(t, l, 10*time.Millisecond)
	before := r.count(ev)
	for range 3 {
		runNoWait(t, l)
	}
	runFor(t, l, quiet)
	require.Equal(t, before, r.count(ev), "%s: an edge-triggered watcher kept firing on an fd that stayed ready", what)
}

// testEdgeOncePerEdge: one callback per readiness edge; an fd that is not
// drained does not fire again until new data arrives.
func testEdgeOncePerEdge(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := ew.WatchEdge(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "WatchEdge")
	assert.Equal(t, loop.Readable, w.Events())
	runFor(t, l, quiet)
	require.Zero(t, r.n(), "an edge watcher fired on an fd with nothing to read")
	writeBytes(t, p.b, 1)
	runUntil(t, l, "the first edge", func() bool { return r.n() > 0 })
	settles(t, l, &r, loop.Readable, "after the first edge")
	before := r.n()
	writeBytes(t, p.b, 1) // new data on an fd that was not drained
	runUntil(t, l, "the edge of new data", func() bool { return r.n() > before })
	settles(t, l, &r, loop.Readable, "after the second edge")
	checkEvents(t, &r, loop.Readable)
	require.NoError(t, w.Stop())
}

// testEdgeInitialReadiness: an fd that is already ready when registered
// fires (once), so that data that came first is not lost.
func testEdgeInitialReadiness(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	p := socketpair(t)
	writeBytes(t, p.b, 1)
	var r recorder
	w, err := ew.WatchEdge(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "WatchEdge")
	runUntil(t, l, "the edge of data present at registration", func() bool { return r.n() > 0 })
	settles(t, l, &r, loop.Readable, "after registration")
	require.NoError(t, w.Stop())
}

// testEdgeWritable: Writable fires at registration, and again when a full
// buffer gets room.
func testEdgeWritable(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := ew.WatchEdge(p.a, loop.Readable|loop.Writable, r.cb)
	require.NoError(t, err, "WatchEdge")
	runUntil(t, l, "the initial Writable edge", func() bool { return r.count(loop.Writable) > 0 })
	settles(t, l, &r, loop.Writable, "writable with room")
	require.Positive(t, fill(t, p.a))
	runFor(t, l, quiet)
	before := r.count(loop.Writable)
	drain(t, p.b)
	runUntil(t, l, "Writable after the peer drained", func() bool { return r.count(loop.Writable) > before })
	checkEvents(t, &r, loop.Readable|loop.Writable)
	require.NoError(t, w.Stop())
}

// testEdgeHangUp: a closed peer is an edge; the next read is EOF.
func testEdgeHangUp(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := ew.WatchEdge(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "WatchEdge")
	p.closeB(t)
	runUntil(t, l, "Readable after the peer closed", func() bool { return r.n() > 0 })
	var buf [8]byte
	n, err := unix.Read(p.a, buf[:])
	assert.NoError(t, err, "read after hang-up")
	assert.Zero(t, n, "read after hang-up must be EOF")
	require.NoError(t, w.Stop())
}

// testEdgeModify: a paused edge watcher does not fire; re-arming it on an
// fd that became ready meanwhile fires (else that readiness is lost).
func testEdgeModify(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	p := socketpair(t)
	var r recorder
	w, err := ew.WatchEdge(p.a, loop.Readable, r.cb)
	require.NoError(t, err, "WatchEdge")
	require.NoError(t, w.Modify(0), "Modify(0)")
	assert.Equal(t, loop.Events(0), w.Events())
	writeBytes(t, p.b, 1)
	runFor(t, l, quiet)
	require.Zero(t, r.n(), "a paused edge watcher fired")
	require.NoError(t, w.Modify(loop.Readable), "Modify(Readable)")
	runUntil(t, l, "Readable after re-arming on a ready fd", func() bool { return r.n() > 0 })
	settles(t, l, &r, loop.Readable, "after re-arming")
	require.NoError(t, w.Stop())
}

func testEdgeStopCollected(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	stopCollected(t, l, ew.WatchEdge)
}

func testEdgeInvalidFD(t *testing.T, open opener) {
	l, ew := edgeLoop(t, open)
	for _, fd := range []int{-1, 1 << 24} {
		w, err := ew.WatchEdge(fd, loop.Readable, func(loop.Events) {})
		assert.ErrorIs(t, err, syscall.EBADF, "WatchEdge(%d)", fd)
		if err == nil && w != nil {
			_ = w.Stop()
		}
	}
	runNoWait(t, l)
}
