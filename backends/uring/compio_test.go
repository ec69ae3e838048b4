//go:build linux && uring

package uring

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// TestCompletionEcho: bytes a peer writes arrive through Recv, go back
// through Send, and the peer reads them; the peer's close is io.EOF, the
// last call.
func TestCompletionEcho(t *testing.T) {
	l := newLoop(t)
	a, b := pair(t)
	var got []byte
	var end error
	calls := 0
	sent := 0
	err := recvFunc(l, a, func(p []byte, err error) {
		calls++
		if err != nil {
			end = err
			return
		}
		got = append(got, p...)
		out := bytes.Clone(p)
		require.NoError(t, l.Send(a, out, func(n int, err error) {
			assert.NoError(t, err)
			assert.Equal(t, len(out), n)
			sent += n
		}))
	})
	require.NoError(t, err)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB: several buffers
	_, err = unix.Write(b, msg)
	require.NoError(t, err)
	runUntil(t, l, func() bool { return sent == len(msg) })
	assert.Equal(t, msg, got)
	back := make([]byte, len(msg))
	require.NoError(t, unix.SetNonblock(b, false))
	for n := 0; n < len(back); {
		k, err := unix.Read(b, back[n:])
		require.NoError(t, err)
		n += k
	}
	assert.Equal(t, msg, back)
	require.NoError(t, unix.Shutdown(b, unix.SHUT_WR))
	runUntil(t, l, func() bool { return end != nil })
	assert.ErrorIs(t, end, io.EOF)
	n := calls
	for range 5 {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Equal(t, n, calls, "no call after io.EOF")
}

// TestCompletionStop: after Stop returns, Recv's callback never runs,
// and the loop closes cleanly with requests in flight.
func TestCompletionStop(t *testing.T) {
	l := newLoop(t)
	a, b := pair(t)
	calls := 0
	err := recvFunc(l, a, func([]byte, error) { calls++ })
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false))
	require.NoError(t, l.StopRecv(a))
	require.NoError(t, l.StopRecv(a), "idempotent")
	_, err = unix.Write(b, []byte("x"))
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Zero(t, calls)
	// A second socket still receiving when the loop closes.
	c, _ := pair(t)
	err = recvFunc(l, c, func([]byte, error) { calls++ })
	require.NoError(t, err)
	require.NoError(t, l.RunOnce(false))
}

// TestCompletionStopLosesNothing: bytes the kernel received for a receive
// being stopped reach its callback during Stop; the rest stay in the
// socket. Stopped in every state: queued and not yet submitted, armed in
// the kernel, and completed but not yet dispatched.
func TestCompletionStopLosesNothing(t *testing.T) {
	l := newLoop(t)
	for round := range 60 {
		a, b := pair(t)
		var got []byte
		err := recvFunc(l, a, func(p []byte, err error) {
			require.NoError(t, err)
			got = append(got, p...)
		})
		require.NoError(t, err)
		if round%3 > 0 {
			require.NoError(t, l.RunOnce(false)) // the receive is in the kernel
		}
		msg := []byte("message " + strconv.Itoa(round))
		_, err = unix.Write(b, msg)
		require.NoError(t, err)
		if round%3 == 2 {
			// Task work runs, the completion lands in the CQ.
			require.NoError(t, l.r.enter(false, -1))
		}
		require.NoError(t, l.StopRecv(a))
		during := len(got)
		for range 3 {
			require.NoError(t, l.RunOnce(false))
		}
		require.Equal(t, during, len(got), "no call after Stop")
		rest := make([]byte, 64)
		n, err := unix.Read(a, rest)
		if err == unix.EAGAIN {
			n = 0
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, string(msg), string(got)+string(rest[:n]), "round %d", round)
	}
}

// TestRecvFDReused: a receive stopped with its request in the kernel,
// its fd closed and the number reused by another socket: the new
// receive gets the new socket's bytes, once, and the old one nothing.
func TestRecvFDReused(t *testing.T) {
	l := newLoop(t)
	sockets := func() (int, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		return fds[0], fds[1]
	}
	for round := range 20 {
		a, b := sockets()
		old := 0
		require.NoError(t, recvFunc(l, a, func([]byte, error) { old++ }))
		require.NoError(t, l.RunOnce(false)) // in the kernel
		require.NoError(t, l.StopRecv(a))
		require.NoError(t, unix.Close(a))
		require.NoError(t, unix.Close(b))
		c, d := sockets()
		if c != a {
			c, d = d, c
		}
		require.Equal(t, a, c, "round %d: the number is reused", round)
		var got []byte
		require.NoError(t, recvFunc(l, c, func(p []byte, err error) {
			if err == nil {
				got = append(got, p...)
			}
		}))
		msg := "round " + strconv.Itoa(round)
		_, err := unix.Write(d, []byte(msg))
		require.NoError(t, err)
		runUntil(t, l, func() bool { return len(got) >= len(msg) })
		for range 3 {
			require.NoError(t, l.RunOnce(false))
		}
		require.Equal(t, msg, string(got))
		require.Zero(t, old)
		require.NoError(t, l.StopRecv(c))
		require.NoError(t, unix.Close(c))
		require.NoError(t, unix.Close(d))
	}
}

// TestRecvEntrySize: a receiving socket costs the loop 6 bytes of its
// table by fd, and nothing else.
func TestRecvEntrySize(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(recvBlock{})/recvBlockLen, uintptr(6))
}

// recvFunc is l.Recv with a function of its own for the receiver; it
// checks that every call names fd.
func recvFunc(l *Loop, fd int, f func(p []byte, err error)) error {
	return l.Recv(fd, loop.ReceiverFunc(func(got int, p []byte, err error) {
		if got != fd {
			panic(fmt.Sprintf("a receive on fd %d was reported for fd %d", fd, got))
		}
		f(p, err)
	}))
}

// TestOneReceiverManyFDs: one Receiver serves many sockets, each call
// naming its fd, and the loop keeps it once, for as long as one of them
// receives.
func TestOneReceiverManyFDs(t *testing.T) {
	l := newLoop(t)
	got := map[int][]byte{}
	r := loop.ReceiverFunc(func(fd int, p []byte, err error) {
		if err == nil {
			got[fd] = append(got[fd], p...)
		}
	})
	const n = 8
	var as, bs []int
	for range n {
		a, b := pair(t)
		require.NoError(t, l.Recv(a, r))
		as, bs = append(as, a), append(bs, b)
	}
	require.Len(t, l.rcvs.slots, 1, "one Receiver, one slot")
	for i, b := range bs {
		_, err := unix.Write(b, []byte("to "+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	runUntil(t, l, func() bool { return len(got) == n && len(got[as[n-1]]) == len("to 7") })
	for i, a := range as {
		assert.Equal(t, "to "+strconv.Itoa(i), string(got[a]))
	}
	for i, a := range as {
		require.NoError(t, l.StopRecv(a))
		if i < n-1 {
			assert.Empty(t, l.rcvs.free, "kept while an fd still receives with it")
		}
	}
	assert.Equal(t, []uint16{1}, l.rcvs.free, "forgotten after its last fd")
	assert.Empty(t, l.rcvs.ids)
}

// TestReceiversBound: past maxReceivers distinct Receivers, adding one
// is an error, and one dropped makes room again.
func TestReceiversBound(t *testing.T) {
	type counter struct{ n int }
	var rs receivers
	rcv := func(c *counter) loop.Receiver {
		return loop.ReceiverFunc(func(int, []byte, error) { c.n++ })
	}
	first := rcv(&counter{})
	id, err := rs.add(first)
	require.NoError(t, err)
	again, err := rs.add(first)
	require.NoError(t, err)
	require.Equal(t, id, again, "the same Receiver keeps its id")
	for range maxReceivers - 1 {
		_, err := rs.add(rcv(&counter{}))
		require.NoError(t, err)
	}
	_, err = rs.add(rcv(&counter{}))
	require.ErrorContains(t, err, "distinct receivers")
	rs.drop(id)
	_, err = rs.add(rcv(&counter{}))
	require.Error(t, err, "first is still counted once")
	rs.drop(id)
	_, err = rs.add(rcv(&counter{}))
	require.NoError(t, err, "room again after its last drop")
}

// TestCompletionErrors: bad arguments are errors, never panics.
func TestCompletionErrors(t *testing.T) {
	l := newLoop(t)
	err := recvFunc(l, -1, func([]byte, error) {})
	assert.ErrorIs(t, err, unix.EBADF)
	a, _ := pair(t)
	err = l.Recv(a, nil)
	assert.ErrorIs(t, err, os.ErrInvalid)
	require.NoError(t, recvFunc(l, a, func([]byte, error) {}))
	err = recvFunc(l, a, func([]byte, error) {})
	assert.ErrorIs(t, err, os.ErrExist, "one receive per fd")
	require.NoError(t, l.StopRecv(a))
	require.NoError(t, l.StopRecv(-1), "no receive: nothing to stop")
	assert.ErrorIs(t, l.Send(a, nil, func(int, error) {}), os.ErrInvalid)
	assert.ErrorIs(t, l.Send(a, []byte("x"), nil), os.ErrInvalid)
	assert.ErrorIs(t, l.Send(-1, []byte("x"), func(int, error) {}), unix.EBADF)
	require.NoError(t, l.Close())
	err = recvFunc(l, a, func([]byte, error) {})
	assert.ErrorIs(t, err, loop.ErrClosed)
	assert.ErrorIs(t, l.Send(a, []byte("x"), func(int, error) {}), loop.ErrClosed)
}

// BenchmarkEcho compares the loop's two ways to serve a TCP echo: readiness
// (Watch, then read and write syscalls in the callback) and completion
// (Recv into the provided buffers, Send). Clients are goroutines of the
// same process on package net, the same in both modes, so the difference
// of the two ns/op is the server's; an op is one round trip of one
// connection. cpu-ns/rt is the process's CPU time per round trip,
// clients included.
func BenchmarkEcho(b *testing.B) {
	for _, conns := range []int{1, 64} {
		for _, size := range []int{64, 16 << 10} {
			for _, mode := range []string{"readiness", "completion", "completion-multishot"} {
				name := "conns=" + strconv.Itoa(conns) + "/size=" + strconv.Itoa(size) + "/" + mode
				b.Run(name, func(b *testing.B) {
					recvMulti = mode == "completion-multishot"
					defer func() { recvMulti = false }()
					benchEcho(b, conns, size, mode != "readiness")
				})
			}
		}
	}
}

func benchEcho(b *testing.B, conns, size int, completion bool) {
	l, err := New()
	require.NoError(b, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	defer func() {
		l.Stop()
		<-done
		require.NoError(b, l.Close())
	}()
	clients := make([]net.Conn, conns)
	servers := make([]net.Conn, conns)
	for i := range clients {
		clients[i], err = net.Dial("tcp", ln.Addr().String())
		require.NoError(b, err)
		defer clients[i].Close()
		servers[i], err = ln.Accept()
		require.NoError(b, err)
		defer servers[i].Close()
		var fd int
		sc, err := servers[i].(*net.TCPConn).SyscallConn()
		require.NoError(b, err)
		require.NoError(b, sc.Control(func(f uintptr) { fd = int(f) }))
		errc := make(chan error, 1)
		require.NoError(b, l.Post(func() { errc <- serveEcho(l, fd, completion) }))
		require.NoError(b, <-errc)
	}
	per := b.N/conns + 1
	var wg sync.WaitGroup
	cpu0 := processCPU(b)
	b.ResetTimer()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for range per {
				if _, err := c.Write(buf); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(per*conns), "cpu-ns/rt")
}

// processCPU is the CPU time the process has used, user and system, in
// ns: a round trip's CPU cost is less disturbed by the other work of a
// loaded machine than its wall time.
func processCPU(b *testing.B) int64 {
	var ru unix.Rusage
	require.NoError(b, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// serveEcho serves one connection's echo on l, in either mode.
func serveEcho(l *Loop, fd int, completion bool) error {
	if !completion {
		buf := make([]byte, 64<<10)
		_, err := l.Watch(fd, loop.Readable, func(loop.Events) {
			for {
				n, err := unix.Read(fd, buf)
				if n <= 0 || err != nil {
					return
				}
				for p := buf[:n]; len(p) > 0; {
					k, err := unix.Write(fd, p)
					if k > 0 {
						p = p[k:]
					} else if err != unix.EAGAIN {
						return
					}
				}
			}
		})
		return err
	}
	// Two buffers, so that the echo allocates nothing per message: one
	// being sent, the other filling meanwhile.
	bufs := [2][]byte{make([]byte, 0, 64<<10), make([]byte, 0, 64<<10)}
	fill, sending := 0, false
	var send func()
	sendDone := func(int, error) {
		sending = false
		send()
	}
	send = func() {
		if sending || len(bufs[fill]) == 0 {
			return
		}
		out := bufs[fill]
		fill ^= 1
		bufs[fill] = bufs[fill][:0]
		sending = true
		if l.Send(fd, out, sendDone) != nil {
			sending = false
		}
	}
	err := recvFunc(l, fd, func(p []byte, err error) {
		if err != nil {
			return
		}
		bufs[fill] = append(bufs[fill], p...)
		send()
	})
	return err
}

// TestCompletionSyscallErrors: a failed receive or send reaches its
// callback once, as a *os.SyscallError with the kernel's errno.
func TestCompletionSyscallErrors(t *testing.T) {
	l := newLoop(t)
	// recv(2) on a pipe: ENOTSOCK.
	fds := make([]int, 2)
	require.NoError(t, unix.Pipe2(fds, unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	var recvErr error
	calls := 0
	err := recvFunc(l, fds[0], func(p []byte, err error) {
		calls++
		recvErr = err
	})
	require.NoError(t, err)
	_, err = unix.Write(fds[1], []byte("x"))
	require.NoError(t, err)
	runUntil(t, l, func() bool { return recvErr != nil })
	var se *os.SyscallError
	require.ErrorAs(t, recvErr, &se)
	assert.Equal(t, "recv", se.Syscall)
	assert.ErrorIs(t, recvErr, unix.ENOTSOCK)
	// A send to a peer that has gone: EPIPE (MSG_NOSIGNAL: no SIGPIPE).
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	a := sp[0]
	defer unix.Close(a)
	require.NoError(t, unix.Close(sp[1]))
	var sendErr error
	sent := -1
	require.NoError(t, l.Send(a, []byte("hello"), func(n int, err error) { sent, sendErr = n, err }))
	runUntil(t, l, func() bool { return sent >= 0 })
	assert.Zero(t, sent)
	assert.ErrorIs(t, sendErr, unix.EPIPE)
	for range 5 {
		require.NoError(t, l.RunOnce(false))
	}
	assert.Equal(t, 1, calls, "a failed receive is reported once")
}

// TestBufRingGrowsOnDemand: receives that never overlap keep the ring at
// its first bufStart buffers, so only their pages are ever touched; a
// burst that finds the ring empty doubles it, and no byte is lost or
// misdelivered on the way.
func TestBufRingGrowsOnDemand(t *testing.T) {
	l := newLoop(t)
	a, b := pair(t)
	var got []byte
	err := recvFunc(l, a, func(p []byte, err error) {
		if err == nil {
			got = append(got, p...)
		}
	})
	require.NoError(t, err)
	var want []byte
	for i := range 3 * bufCount {
		msg := []byte("message " + strconv.Itoa(i) + ";")
		want = append(want, msg...)
		_, err := unix.Write(b, msg)
		require.NoError(t, err)
		runUntil(t, l, func() bool { return len(got) == len(want) })
	}
	assert.Equal(t, want, got)
	small := l.br[groupSmall]
	require.NotNil(t, small)
	assert.Equal(t, bufStart, int(small.given), "one receive at a time uses the first buffers only")

	// A burst: every socket's receive completes before the loop hands
	// any buffer back.
	const n = 4 * bufStart
	gotN := make([][]byte, n)
	peers := make([]int, n)
	for i := range n {
		a, b := pair(t)
		peers[i] = b
		err := recvFunc(l, a, func(p []byte, err error) {
			if err == nil {
				gotN[i] = append(gotN[i], p...)
			}
		})
		require.NoError(t, err)
	}
	require.NoError(t, l.RunOnce(false)) // the receives go out
	for i, b := range peers {
		_, err := unix.Write(b, []byte("socket "+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	runUntil(t, l, func() bool {
		for i := range n {
			if len(gotN[i]) < len("socket "+strconv.Itoa(i)) {
				return false
			}
		}
		return true
	})
	for i := range n {
		assert.Equal(t, "socket "+strconv.Itoa(i), string(gotN[i]))
	}
	assert.Greater(t, int(small.given), bufStart, "the burst found the ring empty and grew it")
	assert.LessOrEqual(t, int(small.given), bufCount)
	assert.Equal(t, bufStart, int(l.br[groupLarge].given), "small messages leave the large ring alone")
}

// TestRecvSizeAdapts: a socket's receives take small buffers until one
// comes back full, then large ones, and small ones again after two
// receives in a row that a small buffer would have held; every byte
// arrives, in order.
func TestRecvSizeAdapts(t *testing.T) {
	l := newLoop(t)
	a, b := pair(t)
	var got []byte
	var chunks []int
	require.NoError(t, recvFunc(l, a, func(p []byte, err error) {
		if err == nil {
			got = append(got, p...)
			chunks = append(chunks, len(p))
		}
	}))
	group := func() uint16 {
		e, ok := l.recvs.get(int32(a))
		require.True(t, ok)
		return e.group()
	}
	require.Equal(t, groupSmall, group())

	big := make([]byte, 4*bufLarge)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for off := 0; off < len(big); {
		n, err := unix.Write(b, big[off:])
		if err == unix.EAGAIN {
			require.NoError(t, l.RunOnce(false))
			continue
		}
		require.NoError(t, err)
		off += n
	}
	runUntil(t, l, func() bool { return len(got) == len(big) })
	require.Equal(t, big, got)
	assert.Equal(t, bufSmall, chunks[0], "the first receive takes a small buffer")
	assert.Greater(t, slices.Max(chunks[1:]), bufSmall, "then large ones")
	assert.Equal(t, groupLarge, group())

	for i := range 2 {
		msg := []byte("small " + strconv.Itoa(i))
		_, err := unix.Write(b, msg)
		require.NoError(t, err)
		want := len(got) + len(msg)
		runUntil(t, l, func() bool { return len(got) == want })
		require.Equal(t, msg, got[want-len(msg):])
		if i == 0 {
			assert.Equal(t, groupLarge, group(), "one small receive does not shrink it")
		}
	}
	assert.Equal(t, groupSmall, group(), "two in a row do")
}
