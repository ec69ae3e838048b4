package conformance

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// prompt bounds how long an unblocking event (deadline, Close) may take to
// release a blocked call. Generous for the race detector on a busy 2-core
// machine; a correct network takes microseconds to milliseconds.
const prompt = 2 * time.Second

// deadlineCases: deadlines on stream conns and listeners, over tcp and unix.
func netDeadlineCases() []netCase {
	var cs []netCase
	add := func(name string, run func(t *testing.T, e *env)) {
		cs = append(cs, netCase{area: "deadline", name: name, run: run})
	}
	for _, nw := range []string{"tcp", "unix"} {
		sfx := title(nw)
		add("PastFailsPendingRead"+sfx, func(t *testing.T, e *env) { dlPastFailsPendingRead(t, e, nw) })
		add("PastFailsPendingWrite"+sfx, func(t *testing.T, e *env) { dlPastFailsPendingWrite(t, e, nw) })
		add("PastFailsManyPending"+sfx, func(t *testing.T, e *env) { dlPastFailsMany(t, e, nw) })
		add("PastFailsFuture"+sfx, func(t *testing.T, e *env) { dlPastFailsFuture(t, e, nw) })
		add("NotEarly"+sfx, func(t *testing.T, e *env) { dlNotEarly(t, e, nw) })
		add("ExtendWhileBlocked"+sfx, func(t *testing.T, e *env) { dlExtend(t, e, nw) })
		add("ShortenWhileBlocked"+sfx, func(t *testing.T, e *env) { dlShorten(t, e, nw) })
		add("ZeroClears"+sfx, func(t *testing.T, e *env) { dlZeroClears(t, e, nw) })
		add("ReadWriteIndependent"+sfx, func(t *testing.T, e *env) { dlIndependent(t, e, nw) })
		add("Accept"+sfx, func(t *testing.T, e *env) { dlAccept(t, e, nw) })
	}
	return cs
}

// readResult is the outcome of a Read in another goroutine.
type readResult struct {
	n   int
	err error
	at  time.Time
}

func goRead(c net.Conn, buf []byte) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		n, err := c.Read(buf)
		ch <- readResult{n, err, time.Now()}
	}()
	return ch
}

// settle gives a goroutine just started time to block in its call.
func settle() { time.Sleep(30 * time.Millisecond) }

func dlPastFailsPendingRead(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	ch := goRead(c, make([]byte, 8))
	settle()
	set := time.Now()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	r := waitFor(t, ch, prompt, "Read pending when its deadline was set in the past")
	assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
	assertTimeout(t, r.err)
	assert.Less(t, r.at.Sub(set), prompt)
	// And every later Read fails at once.
	_, err := c.Read(make([]byte, 8))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "Read after the deadline passed")
}

// fillWrite blocks c's writes: it writes with a short deadline until the
// kernel buffers are full, then clears the deadline.
func fillWrite(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	err := fillUntilError(c)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "filling the send buffer")
	require.NoError(t, c.SetWriteDeadline(time.Time{}))
}

// pendingWrite is the size of a write that must stay blocked on a conn
// fillWrite filled: more than a peer that reads ahead of its application
// can still take after the fill ends (evio's backend buffers up to 1 MiB
// per stream, and can lag behind a fill on a loaded machine), plus what
// TCP's send-buffer autotuning adds meanwhile.
const pendingWrite = 8 << 20

func goWrite(c net.Conn, buf []byte) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		n, err := c.Write(buf)
		ch <- readResult{n, err, time.Now()}
	}()
	return ch
}

func dlPastFailsPendingWrite(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	fillWrite(t, c)
	ch := goWrite(c, make([]byte, pendingWrite))
	settle()
	select {
	case r := <-ch:
		t.Fatalf("Write to a full conn returned (%d, %v) instead of blocking", r.n, r.err)
	default:
	}
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
	r := waitFor(t, ch, prompt, "Write pending when its deadline was set in the past")
	assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
	assertTimeout(t, r.err)
	_, err := c.Write([]byte("x"))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "Write after the deadline passed")
}

func dlPastFailsFuture(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	// Data is waiting, yet a Read past its deadline fails, like net's.
	_, err := peer.Write([]byte("waiting"))
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, c.SetDeadline(time.Now().Add(-time.Millisecond)))
	n, err := c.Read(make([]byte, 8))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "Read with a past deadline and data waiting")
	n, err = c.Write([]byte("x"))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "Write with a past deadline and room to write")
	// The data is still there once the deadline is cleared.
	require.NoError(t, c.SetDeadline(time.Time{}))
	buf := make([]byte, 7)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "waiting", string(buf))
}

func dlNotEarly(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	for _, after := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond} {
		dl := time.Now().Add(after)
		require.NoError(t, c.SetReadDeadline(dl))
		ch := goRead(c, make([]byte, 8))
		r := waitFor(t, ch, after+prompt, "Read with a deadline")
		assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
		assert.False(t, r.at.Before(dl), "Read with a %v deadline returned %v early", after, dl.Sub(r.at))
	}
}

func dlExtend(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	buf := make([]byte, 8)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		dl := start.Add(100 * time.Millisecond)
		require.NoError(t, c.SetReadDeadline(dl))
		ch := goRead(c, buf)
		settle()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		changed := time.Now()
		time.Sleep(270 * time.Millisecond)
		_, err := peer.Write([]byte("late"))
		require.NoError(t, err)
		r := waitFor(t, ch, 10*time.Second, "Read whose deadline was extended")
		if starvedRound(t, attempt, changed, dl, r.err) {
			_, err := io.ReadFull(c, buf[:4]) // the bytes written for that round
			require.NoError(t, err)
			continue
		}
		require.NoError(t, r.err, "Read whose deadline was extended while it was blocked")
		assert.Equal(t, "late", string(buf[:r.n]))
		assert.GreaterOrEqual(t, r.at.Sub(start), 250*time.Millisecond)
		return
	}
}

// starvedRound reports whether a round that changed a deadline while a
// call was blocked must run again: the change returned only at or after
// the deadline it changed (the test's goroutine was descheduled that
// long), so the call's timeout is no evidence either way. After five such
// rounds the case fails: it proved nothing.
func starvedRound(t *testing.T, attempt int, changed, dl time.Time, err error) bool {
	t.Helper()
	if changed.Before(dl) || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	require.Less(t, attempt, 5, "in every round the deadline change came after the deadline it changed: the machine is too loaded for this case")
	t.Logf("round %d: the deadline changed %v after it had passed (a starved test goroutine); running the round again", attempt, changed.Sub(dl))
	return true
}

func dlShorten(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Hour)))
	ch := goRead(c, make([]byte, 8))
	settle()
	dl := time.Now().Add(80 * time.Millisecond)
	require.NoError(t, c.SetReadDeadline(dl))
	r := waitFor(t, ch, prompt, "Read whose deadline was shortened")
	assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
	assert.False(t, r.at.Before(dl), "Read returned before its shortened deadline")
}

func dlZeroClears(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	require.NoError(t, c.SetDeadline(time.Now().Add(-time.Second)))
	_, err := c.Read(make([]byte, 8))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	// Clear it while nothing is pending; then a Read blocks until data.
	require.NoError(t, c.SetDeadline(time.Time{}))
	buf := make([]byte, 8)
	ch := goRead(c, buf)
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-ch:
		t.Fatalf("Read returned (%d, %v) after its deadline was cleared and before data arrived", r.n, r.err)
	default:
	}
	_, err = peer.Write([]byte("data"))
	require.NoError(t, err)
	r := waitFor(t, ch, prompt, "Read after the deadline was cleared")
	require.NoError(t, r.err)
	assert.Equal(t, "data", string(buf[:r.n]))

	// Clearing while blocked also works: a Read due at 80ms is cleared and
	// waits for data sent at 250ms.
	for attempt := 1; ; attempt++ {
		dl := time.Now().Add(80 * time.Millisecond)
		require.NoError(t, c.SetReadDeadline(dl))
		ch = goRead(c, buf)
		settle()
		require.NoError(t, c.SetReadDeadline(time.Time{}))
		changed := time.Now()
		time.Sleep(220 * time.Millisecond)
		_, err = peer.Write([]byte("more"))
		require.NoError(t, err)
		r = waitFor(t, ch, prompt, "Read whose deadline was cleared while blocked")
		if starvedRound(t, attempt, changed, dl, r.err) {
			_, err := io.ReadFull(c, buf[:4]) // the bytes written for that round
			require.NoError(t, err)
			continue
		}
		require.NoError(t, r.err, "Read whose deadline was cleared while it was blocked")
		assert.Equal(t, "more", string(buf[:r.n]))
		return
	}
}

func dlIndependent(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	// A past read deadline does not stop writes, and the reverse.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	_, err := c.Write([]byte("w"))
	require.NoError(t, err, "Write with only the read deadline past")
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
	_, err = peer.Write([]byte("r"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 1)
	_, err = c.Read(buf)
	require.NoError(t, err, "Read with only the write deadline past")
	// SetDeadline sets both.
	require.NoError(t, c.SetDeadline(time.Now().Add(-time.Second)))
	_, err = c.Read(buf)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "Read after SetDeadline(past)")
	_, err = c.Write(buf)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "Write after SetDeadline(past)")
}

func dlAccept(t *testing.T, e *env, nw string) {
	ln := e.net().listen(nw)
	dl, ok := ln.(deadliner)
	require.True(t, ok, "listener %T has no SetDeadline(time.Time) error", ln)
	type acc struct {
		c   net.Conn
		err error
		at  time.Time
	}
	goAccept := func() <-chan acc {
		ch := make(chan acc, 1)
		go func() {
			c, err := ln.Accept()
			if !isNil(c) {
				e.track(c)
			}
			ch <- acc{c, err, time.Now()}
		}()
		return ch
	}
	// Times out, not early.
	d := time.Now().Add(50 * time.Millisecond)
	require.NoError(t, dl.SetDeadline(d))
	r := waitFor(t, goAccept(), prompt, "Accept with a deadline")
	assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
	assertTimeout(t, r.err)
	assert.False(t, r.at.Before(d), "Accept returned before its deadline")
	// A past deadline fails a pending Accept.
	require.NoError(t, dl.SetDeadline(time.Time{}))
	ch := goAccept()
	settle()
	require.NoError(t, dl.SetDeadline(time.Now().Add(-time.Second)))
	r = waitFor(t, ch, prompt, "Accept pending when its deadline was set in the past")
	assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
	// Zero clears: Accept then succeeds. The dial goes through the
	// reference so that this case needs only Listen.
	require.NoError(t, dl.SetDeadline(time.Time{}))
	ch = goAccept()
	c, err := net.Dial(nw, ln.Addr().String())
	require.NoError(t, err)
	e.track(c)
	r = waitFor(t, ch, prompt, "Accept after its deadline was cleared")
	require.NoError(t, r.err)
}

// closeCases: Close (own or peer's) releases every blocked call promptly.
func netCloseCases() []netCase {
	var cs []netCase
	add := func(name string, run func(t *testing.T, e *env)) {
		cs = append(cs, netCase{area: "close", name: name, run: run})
	}
	for _, nw := range []string{"tcp", "unix"} {
		sfx := title(nw)
		add("UnblocksRead"+sfx, func(t *testing.T, e *env) { closeUnblocksRead(t, e, nw) })
		add("UnblocksWrite"+sfx, func(t *testing.T, e *env) { closeUnblocksWrite(t, e, nw) })
		add("UnblocksReadAndWrite"+sfx, func(t *testing.T, e *env) { closeUnblocksBoth(t, e, nw) })
		add("UnblocksMany"+sfx, func(t *testing.T, e *env) { closeUnblocksMany(t, e, nw) })
		add("UnblocksAccept"+sfx, func(t *testing.T, e *env) { closeUnblocksAccept(t, e, nw) })
		add("PeerCloseUnblocksRead"+sfx, func(t *testing.T, e *env) { closePeerRead(t, e, nw) })
		add("PeerCloseUnblocksWrite"+sfx, func(t *testing.T, e *env) { closePeerWrite(t, e, nw) })
	}
	for _, nw := range []string{"udp", "unixgram"} {
		add("UnblocksReadFrom"+title(nw), func(t *testing.T, e *env) { closeUnblocksReadFrom(t, e, nw) })
	}
	return cs
}

// requireClosedErr checks the error of a call that a Close released.
func requireClosedErr(t *testing.T, what string, err error) {
	t.Helper()
	assert.ErrorIs(t, err, net.ErrClosed, "%s", what)
	var oe *net.OpError
	assert.ErrorAs(t, err, &oe, "%s: a *net.OpError", what)
}

func closeUnblocksRead(t *testing.T, e *env, nw string) {
	for _, which := range e.roles() {
		d, a, _ := e.pair(nw)
		c := pick(which, d, a)
		ch := goRead(c, make([]byte, 8))
		settle()
		require.NoError(t, c.Close())
		r := waitFor(t, ch, prompt, "Read blocked on the "+which+" conn when it was closed")
		requireClosedErr(t, "Read released by Close", r.err)
	}
}

func closeUnblocksWrite(t *testing.T, e *env, nw string) {
	for _, which := range e.roles() {
		d, a, _ := e.pair(nw)
		c := pick(which, d, a)
		fillWrite(t, c)
		ch := goWrite(c, make([]byte, pendingWrite))
		settle()
		require.NoError(t, c.Close())
		r := waitFor(t, ch, prompt, "Write blocked on the "+which+" conn when it was closed")
		requireClosedErr(t, "Write released by Close", r.err)
	}
}

func closeUnblocksBoth(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	fillWrite(t, c)
	rd := goRead(c, make([]byte, 8))
	wr := goWrite(c, make([]byte, pendingWrite))
	settle()
	require.NoError(t, c.Close())
	r := waitFor(t, rd, prompt, "Read blocked when the conn was closed")
	requireClosedErr(t, "Read released by Close", r.err)
	w := waitFor(t, wr, prompt, "Write blocked when the conn was closed")
	requireClosedErr(t, "Write released by Close", w.err)
}

func closeUnblocksAccept(t *testing.T, e *env, nw string) {
	ln := e.net().listen(nw)
	ch := goErr(func() error {
		return e.net().result(ln.Accept())
	})
	settle()
	require.NoError(t, ln.Close())
	err := waitFor(t, ch, prompt, "Accept blocked when its listener was closed")
	requireClosedErr(t, "Accept released by Close", err)
}

func closePeerRead(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	ch := goRead(c, make([]byte, 8))
	settle()
	require.NoError(t, peer.Close())
	r := waitFor(t, ch, prompt, "Read blocked when the peer closed")
	assert.Zero(t, r.n)
	assert.Equal(t, io.EOF, r.err, "Read released by the peer's Close returns io.EOF itself")
}

func closePeerWrite(t *testing.T, e *env, nw string) {
	c, peer, _ := e.conns(nw)
	fillWrite(t, c)
	ch := goErr(func() error { return fillUntilError(c) })
	settle()
	require.NoError(t, peer.Close())
	err := waitFor(t, ch, prompt, "Write blocked when the peer closed without reading")
	assert.True(t, errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET),
		"Write released by the peer's Close: %v, want EPIPE or ECONNRESET", err)
	var oe *net.OpError
	assert.ErrorAs(t, err, &oe)
}

func closeUnblocksReadFrom(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	pc := e.net().listenPacket(nw)
	ch := goErr(func() error {
		_, _, err := pc.ReadFrom(make([]byte, 8))
		return err
	})
	settle()
	require.NoError(t, pc.Close())
	err := waitFor(t, ch, prompt, "ReadFrom blocked when the conn was closed")
	requireClosedErr(t, "ReadFrom released by Close", err)
}

// blockedCalls starts readers goroutines blocked in Read on c and, if
// writers > 0, fills c's buffers and starts writers blocked in Write.
func blockedCalls(t *testing.T, c net.Conn, readers, writers int) []<-chan readResult {
	var chs []<-chan readResult
	if writers > 0 {
		fillWrite(t, c)
	}
	for range readers {
		chs = append(chs, goRead(c, make([]byte, 8)))
	}
	for range writers {
		chs = append(chs, goWrite(c, make([]byte, pendingWrite)))
	}
	settle()
	for i, ch := range chs {
		select {
		case r := <-ch:
			t.Fatalf("call %d returned (%d, %v) instead of blocking", i, r.n, r.err)
		default:
		}
	}
	return chs
}

// dlPastFailsMany: several goroutines blocked in Read (net queues them on
// the conn's read lock) are all released by one past deadline.
func dlPastFailsMany(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	chs := blockedCalls(t, c, 4, 0)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	for i, ch := range chs {
		r := waitFor(t, ch, prompt, fmt.Sprintf("Read %d pending when the deadline was set in the past", i))
		assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded, "Read %d", i)
	}
}

// closeUnblocksMany: Close releases every blocked Read and Write, however
// many goroutines wait.
func closeUnblocksMany(t *testing.T, e *env, nw string) {
	c, _, _ := e.conns(nw)
	chs := blockedCalls(t, c, 4, 3)
	require.NoError(t, c.Close())
	for i, ch := range chs {
		r := waitFor(t, ch, prompt, fmt.Sprintf("call %d blocked when the conn was closed", i))
		requireClosedErr(t, fmt.Sprintf("call %d released by Close", i), r.err)
	}
}
