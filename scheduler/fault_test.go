//go:build linux

package scheduler_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// Syscall fault injection (scheduler.Faults, hook_export_test.go): each
// case makes the scheduler's own syscalls fail or come back short, on
// every backend whose hub makes them (a loop without CapWatch, such as
// evio, owns its sockets and makes its own syscalls), and checks four
// things: the error is the one net returns in the same situation (produced
// for real on a net socket where the kernel can be made to, else built
// from net's source) or a difference written down here; no socket the
// case opened stays open; no goroutine is left behind; and the hub still
// serves a fresh connection afterwards.
//
// Documented differences from net:
//   - EMFILE and ENFILE on accept: net's Accept returns the error and
//     leaves the back-off to its caller (net/http sleeps); a hub's Accept
//     backs off itself (5 ms doubling to 1 s) and returns the next
//     connection once a descriptor is free.
//   - An error from close(2): net's Close returns it; a hub's Close
//     returns nil. On Linux the descriptor is released whatever close
//     reports (EINTR included), so there is nothing for the caller to do.

func faultBackends(t *testing.T) []string {
	var out []string
	for _, name := range loop.Names() {
		l, err := loop.Open(name)
		require.NoError(t, err)
		ok := loop.Supports(l, loop.CapWatch) && loop.Supports(l, loop.CapDial)
		require.NoError(t, l.Close())
		if ok {
			out = append(out, name)
		}
	}
	return out
}

// faultCase runs fn on a fresh hub of every backend, with the switch
// reset around it and the leak checks after the hub is closed.
func faultCase(t *testing.T, fn func(t *testing.T, h *scheduler.Hub)) {
	for _, name := range faultBackends(t) {
		t.Run(name, func(t *testing.T) {
			leak := goleak.IgnoreCurrent()
			open0 := scheduler.Faults.Open()
			t.Cleanup(func() {
				scheduler.Faults.Reset()
				require.Eventually(t, func() bool {
					for fd := range scheduler.Faults.Open() {
						if !open0[fd] {
							return false
						}
					}
					return true
				}, 3*time.Second, 5*time.Millisecond, "sockets opened by the case are still open: %v (before: %v)", scheduler.Faults.Open(), open0)
				goleak.VerifyNone(t, leak)
			})
			scheduler.Faults.Reset()
			h := openHub(t, name)
			fn(t, h)
			scheduler.Faults.Reset()
			assertServes(t, h)
		})
	}
}

// assertServes: a fresh pair on h carries bytes both ways.
func assertServes(t *testing.T, h *scheduler.Hub) {
	t.Helper()
	a, b := pair(t, h)
	require.NoError(t, a.SetDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, b.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := a.Write([]byte("still serving"))
	require.NoError(t, err)
	buf := make([]byte, 13)
	_, err = io.ReadFull(b, buf)
	require.NoError(t, err, "the hub no longer serves after the fault")
	require.Equal(t, "still serving", string(buf))
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
}

// sysfd is the descriptor of a hub socket.
func sysfd(t *testing.T, c any) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	fd := -1
	require.NoError(t, rc.Control(func(f uintptr) { fd = int(f) }))
	return fd
}

// on makes a filter that faults only calls on fd.
func on(fd int, f scheduler.Fault) scheduler.Filter {
	return func(got int) scheduler.Fault {
		if got == fd {
			return f
		}
		return scheduler.Fault{}
	}
}

// times makes a filter that faults the first n calls on fd.
func times(fd int, n int64, f scheduler.Fault) scheduler.Filter {
	var k atomic.Int64
	return func(got int) scheduler.Fault {
		if got == fd && k.Add(1) <= n {
			return f
		}
		return scheduler.Fault{}
	}
}

var portRE = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]*\]):\d+`)

// describe renders what must match net: the message with ports
// normalised, the concrete types along the Unwrap chain, *net.OpError's
// Op and Net, Timeout.
func describe(err error) []string {
	if err == nil {
		return []string{"<nil>"}
	}
	out := []string{portRE.ReplaceAllString(err.Error(), "${1}:PORT")}
	for e := err; e != nil; e = errors.Unwrap(e) {
		d := fmt.Sprintf("%T", e)
		switch v := e.(type) {
		case *net.OpError:
			d += fmt.Sprintf(" Op=%s Net=%s Source=%v Addr=%v", v.Op, v.Net, v.Source != nil, v.Addr != nil)
		case *os.SyscallError:
			d += " " + v.Syscall
		case syscall.Errno:
			d += fmt.Sprintf(" %d", uintptr(v))
		}
		out = append(out, d)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		out = append(out, fmt.Sprintf("Timeout=%v", ne.Timeout()))
	}
	return out
}

func sameErr(t *testing.T, what string, ref, got error, is error) {
	t.Helper()
	require.Error(t, ref, "%s: net returned no error: the case is wrong", what)
	require.ErrorIs(t, ref, is, "%s: net's error is not %v: the case is wrong", what, is)
	require.Error(t, got, "%s: no error; net returned %q", what, ref)
	assert.Equal(t, describe(ref), describe(got), "%s: differs from net\n net: %v\n hub: %v", what, ref, got)
}

// netPair is a connected pair of the standard library.
func netPair(t *testing.T) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	a, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

func goAccept(ln net.Listener) <-chan error {
	ch := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		ch <- err
	}()
	return ch
}

func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: stuck for 10s", what)
	}
	var zero T
	return zero
}

// Accept: ECONNABORTED (a connection reset before it was taken) and EINTR
// are retried, as net's Accept does; the caller sees the next connection.
func TestFaultAcceptRetried(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ECONNABORTED, syscall.EINTR} {
		t.Run(errno.Error(), func(t *testing.T) {
			faultCase(t, func(t *testing.T, h *scheduler.Hub) {
				ln, err := h.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				defer ln.Close()
				scheduler.Faults.Set(scheduler.CallAccept, times(sysfd(t, ln), 3, scheduler.Fault{Err: errno}))
				c, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(t, err)
				defer c.Close()
				require.NoError(t, within(t, goAccept(ln), "Accept"))
				assert.EqualValues(t, 3, scheduler.Faults.Hits(scheduler.CallAccept))
			})
		})
	}
}

// Accept: EMFILE and ENFILE back off (documented difference) without
// spinning, Close releases the backing-off Accept with net's closed error,
// and the connection is accepted once descriptors are free.
func TestFaultAcceptNoDescriptor(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			faultCase(t, func(t *testing.T, h *scheduler.Hub) {
				ln, err := h.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				defer ln.Close()
				var failing atomic.Bool
				failing.Store(true)
				lfd := sysfd(t, ln)
				scheduler.Faults.Set(scheduler.CallAccept, func(fd int) scheduler.Fault {
					if fd == lfd && failing.Load() {
						return scheduler.Fault{Err: errno}
					}
					return scheduler.Fault{}
				})
				c, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(t, err)
				defer c.Close()
				ch := goAccept(ln)
				time.Sleep(150 * time.Millisecond)
				hits := scheduler.Faults.Hits(scheduler.CallAccept)
				assert.LessOrEqual(t, hits, int64(8), "Accept retried %d times in 150ms: spinning", hits)
				assert.GreaterOrEqual(t, hits, int64(2), "Accept gave up retrying")
				failing.Store(false)
				require.NoError(t, within(t, ch, "Accept after descriptors are free"))

				// Close during the back-off.
				failing.Store(true)
				_, err = net.Dial("tcp", ln.Addr().String())
				require.NoError(t, err)
				ch = goAccept(ln)
				time.Sleep(20 * time.Millisecond)
				require.NoError(t, ln.Close())
				got := within(t, ch, "Accept backing off when Close came")
				ref := stdAcceptClosed(t)
				sameErr(t, "Accept released by Close", ref, got, net.ErrClosed)
			})
		})
	}
}

// stdAcceptClosed is net's error for an Accept released by Close.
func stdAcceptClosed(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := goAccept(ln)
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, ln.Close())
	return within(t, ch, "net's Accept")
}

// Accept: ENOBUFS (and any other error) is returned as net returns it,
// and the listener keeps working: the queued connection is accepted by
// the next call.
func TestFaultAcceptENOBUFS(t *testing.T) {
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		ln, err := h.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		scheduler.Faults.Set(scheduler.CallAccept, times(sysfd(t, ln), 1, scheduler.Fault{Err: syscall.ENOBUFS}))
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		got := within(t, goAccept(ln), "Accept")
		// net: accept in internal/poll/sock_cloexec.go names "accept4";
		// netFD.accept wraps it in an *os.SyscallError; TCPListener.Accept
		// in an *OpError with the listener's address.
		ref := error(&net.OpError{Op: "accept", Net: "tcp", Addr: ln.Addr(), Err: os.NewSyscallError(scheduler.AcceptName, syscall.ENOBUFS)})
		sameErr(t, "Accept failing with ENOBUFS", ref, got, syscall.ENOBUFS)
		require.NoError(t, within(t, goAccept(ln), "the next Accept"))
	})
}

// Read: ECONNRESET is net's "read: connection reset by peer" (compared
// with a real reset on a net conn).
func TestFaultReadReset(t *testing.T) {
	nd, na := netPair(t)
	require.NoError(t, na.(*net.TCPConn).SetLinger(0))
	require.NoError(t, na.Close())
	_, ref := nd.Read(make([]byte, 8))
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		a, b := pair(t, h)
		scheduler.Faults.Set(scheduler.CallRead, on(sysfd(t, a), scheduler.Fault{Err: syscall.ECONNRESET}))
		_, err := a.Read(make([]byte, 8))
		sameErr(t, "Read", ref, err, syscall.ECONNRESET)
		// A reader parked when the reset comes gets it too.
		scheduler.Faults.Reset()
		ch := make(chan error, 1)
		go func() { _, err := a.Read(make([]byte, 8)); ch <- err }()
		time.Sleep(10 * time.Millisecond)
		scheduler.Faults.Set(scheduler.CallRead, on(sysfd(t, a), scheduler.Fault{Err: syscall.ECONNRESET}))
		_, err = b.Write([]byte("x"))
		require.NoError(t, err)
		sameErr(t, "parked Read", ref, within(t, ch, "parked Read"), syscall.ECONNRESET)
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
}

// Write: EPIPE is net's "write: broken pipe" (compared with a real one:
// a write after CloseWrite), with n = 0.
func TestFaultWriteEPIPE(t *testing.T) {
	nd, _ := netPair(t)
	require.NoError(t, nd.(*net.TCPConn).CloseWrite())
	_, ref := nd.Write([]byte("x"))
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		a, b := pair(t, h)
		scheduler.Faults.Set(scheduler.CallWrite, on(sysfd(t, a), scheduler.Fault{Err: syscall.EPIPE}))
		n, err := a.Write([]byte("hello"))
		assert.Zero(t, n)
		sameErr(t, "Write", ref, err, syscall.EPIPE)
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
}

// Short reads and writes: every byte arrives, in order, and Write
// reports the whole length, as net's Write loops until done.
func TestFaultShortIO(t *testing.T) {
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		a, b := pair(t, h)
		fa, fb := sysfd(t, a), sysfd(t, b)
		scheduler.Faults.Set(scheduler.CallWrite, on(fa, scheduler.Fault{Short: 1000}))
		scheduler.Faults.Set(scheduler.CallRead, on(fb, scheduler.Fault{Short: 7}))
		msg := make([]byte, 256<<10)
		_, _ = rand.Read(msg)
		ch := make(chan error, 1)
		go func() {
			n, err := a.Write(msg)
			if err == nil && n != len(msg) {
				err = fmt.Errorf("Write returned n=%d of %d with no error", n, len(msg))
			}
			ch <- err
		}()
		got := make([]byte, len(msg))
		require.NoError(t, b.SetReadDeadline(time.Now().Add(20*time.Second)))
		_, err := io.ReadFull(b, got)
		require.NoError(t, err)
		require.NoError(t, within(t, ch, "short Write"))
		require.True(t, bytes.Equal(msg, got), "bytes differ after short reads and writes")
		assert.Greater(t, scheduler.Faults.Hits(scheduler.CallWrite), int64(200))
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
}

// EINTR on every other call of every call that can be interrupted
// (accept, connect before and after it reached the kernel, read, write,
// recvfrom, sendto, close after releasing the fd): nothing fails, every
// byte arrives.
func TestFaultEINTREverywhere(t *testing.T) {
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		var k [16]atomic.Int64
		every := func(c scheduler.Call, after bool) {
			scheduler.Faults.Set(c, func(int) scheduler.Fault {
				n := k[c].Add(1)
				if n%2 == 1 {
					return scheduler.Fault{Err: syscall.EINTR, After: after || (c == scheduler.CallConnect && n%4 == 3)}
				}
				return scheduler.Fault{}
			})
		}
		for _, c := range []scheduler.Call{scheduler.CallAccept, scheduler.CallConnect, scheduler.CallRead,
			scheduler.CallWrite, scheduler.CallRecvfrom, scheduler.CallSendto} {
			every(c, false)
		}
		every(scheduler.CallClose, true)
		msg := make([]byte, 64<<10)
		_, _ = rand.Read(msg)
		for i := range 10 {
			a, b := pair(t, h)
			go func() { _, _ = a.Write(msg) }()
			got := make([]byte, len(msg))
			require.NoError(t, b.SetReadDeadline(time.Now().Add(10*time.Second)))
			_, err := io.ReadFull(b, got)
			require.NoError(t, err, "pair %d", i)
			require.True(t, bytes.Equal(msg, got), "pair %d: bytes differ", i)
			require.NoError(t, a.Close())
			require.NoError(t, b.Close())
		}
		p1, err := h.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		p2, err := h.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		require.NoError(t, p2.SetReadDeadline(time.Now().Add(10*time.Second)))
		for i := range 20 {
			_, err := p1.WriteTo([]byte{byte(i)}, p2.LocalAddr())
			require.NoError(t, err)
			buf := make([]byte, 4)
			n, _, err := p2.ReadFrom(buf)
			require.NoError(t, err)
			require.Equal(t, []byte{byte(i)}, buf[:n])
		}
		require.NoError(t, p1.Close())
		require.NoError(t, p2.Close())
		for _, c := range []scheduler.Call{scheduler.CallAccept, scheduler.CallConnect, scheduler.CallRead,
			scheduler.CallWrite, scheduler.CallRecvfrom, scheduler.CallSendto, scheduler.CallClose} {
			assert.Positive(t, scheduler.Faults.Hits(c), "call %d was never interrupted", c)
		}
	})
}

// Connect: EINPROGRESS, then the connection fails (SO_ERROR). The error
// is net's for a refused connection (compared with a real refusal), and
// the dial's socket is closed.
func TestFaultConnectFailsLate(t *testing.T) {
	refLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := refLn.Addr().String()
	require.NoError(t, refLn.Close())
	_, refRefused := net.Dial("tcp", addr)
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		ln, err := h.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ETIMEDOUT, syscall.ENETUNREACH} {
			scheduler.Faults.Set(scheduler.CallConnect, func(int) scheduler.Fault {
				return scheduler.Fault{Err: syscall.EINPROGRESS, After: true}
			})
			scheduler.Faults.Set(scheduler.CallGetsockopt, func(int) scheduler.Fault {
				return scheduler.Fault{SoError: errno}
			})
			c, err := h.Dial("tcp", ln.Addr().String())
			require.Nil(t, c)
			ref := refRefused
			if errno != syscall.ECONNREFUSED {
				// net: connect in net/fd_unix.go wraps SO_ERROR's errno
				// as "connect"; Dialer.DialContext in an *OpError.
				ref = &net.OpError{Op: "dial", Net: "tcp", Addr: ln.Addr(), Err: os.NewSyscallError("connect", errno)}
			}
			sameErr(t, "Dial failing after EINPROGRESS with "+errno.Error(), ref, err, errno)
			// The connection the kernel made meanwhile is accepted and
			// closed: it must read EOF, the hub's socket being closed.
			scheduler.Faults.Reset()
			ac, err := ln.Accept()
			require.NoError(t, err)
			require.NoError(t, ac.SetReadDeadline(time.Now().Add(10*time.Second)))
			_, err = ac.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "the failed dial's socket was not closed")
			require.NoError(t, ac.Close())
		}
		// A dial cancelled while its connect is in progress.
		scheduler.Faults.Set(scheduler.CallConnect, func(int) scheduler.Fault {
			return scheduler.Fault{Err: syscall.EINPROGRESS}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err = h.DialContext(ctx, "tcp", ln.Addr().String())
		var d net.Dialer
		ctx2, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel2()
		_, ref := d.DialContext(ctx2, "tcp", ln.Addr().String())
		sameErr(t, "Dial timing out while connect is in progress", ref, err, context.DeadlineExceeded)
	})
}

// socket(2) failing with EMFILE: Dial, Listen and ListenPacket return
// net's errors (compared with net under a real descriptor shortage), and
// open nothing.
func TestFaultSocketEMFILE(t *testing.T) {
	live, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer live.Close()
	var refDial, refListen, refPacket error
	func() {
		var old unix.Rlimit
		require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &old))
		lowest, err := unix.Dup(2)
		require.NoError(t, err)
		_ = unix.Close(lowest)
		lim := old
		lim.Cur = uint64(lowest)
		require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
		defer func() { require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &old)) }()
		_, refDial = net.Dial("tcp", live.Addr().String())
		_, refListen = net.Listen("tcp", "127.0.0.1:0")
		_, refPacket = net.ListenPacket("udp", "127.0.0.1:0")
	}()
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		scheduler.Faults.Set(scheduler.CallSocket, func(int) scheduler.Fault { return scheduler.Fault{Err: syscall.EMFILE} })
		_, err := h.Dial("tcp", live.Addr().String())
		sameErr(t, "Dial", refDial, err, syscall.EMFILE)
		_, err = h.Listen("tcp", "127.0.0.1:0")
		sameErr(t, "Listen", refListen, err, syscall.EMFILE)
		_, err = h.ListenPacket("udp", "127.0.0.1:0")
		sameErr(t, "ListenPacket", refPacket, err, syscall.EMFILE)
	})
}

// setsockopt(2) failing: Listen reports it as net does and closes the
// socket; Dial succeeds (net's TCP defaults are best effort); SetNoDelay
// returns net's "set" error.
func TestFaultSetsockopt(t *testing.T) {
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		ln, err := h.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		scheduler.Faults.Set(scheduler.CallSetsockopt, func(int) scheduler.Fault { return scheduler.Fault{Err: syscall.ENOBUFS} })
		_, err = h.Listen("tcp", "127.0.0.1:0")
		// net: setDefaultListenerSockopts wraps SO_REUSEADDR's error as
		// "setsockopt"; ListenConfig.Listen in an *OpError with the
		// resolved address.
		ref := error(&net.OpError{Op: "listen", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Err: os.NewSyscallError("setsockopt", syscall.ENOBUFS)})
		sameErr(t, "Listen with setsockopt failing", ref, err, syscall.ENOBUFS)

		c, err := h.Dial("tcp", ln.Addr().String())
		require.NoError(t, err, "Dial with setsockopt failing: net's TCP defaults are best effort")
		defer c.Close()
		err = c.(interface{ SetNoDelay(bool) error }).SetNoDelay(false)
		// net: TCPConn.SetNoDelay wraps setNoDelay's *os.SyscallError in
		// an *OpError "set" with both addresses.
		ref = &net.OpError{Op: "set", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("setsockopt", syscall.ENOBUFS)}
		sameErr(t, "SetNoDelay", ref, err, syscall.ENOBUFS)
		scheduler.Faults.Reset()
		ac, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, ac.Close())
	})
}

// close(2) reporting EINTR after releasing the fd: Close returns nil
// (documented difference), the fd is released exactly once, and blocked
// calls are released with net.ErrClosed.
func TestFaultCloseEINTR(t *testing.T) {
	faultCase(t, func(t *testing.T, h *scheduler.Hub) {
		a, b := pair(t, h)
		fa := sysfd(t, a)
		var closes atomic.Int64
		scheduler.Faults.Set(scheduler.CallClose, func(fd int) scheduler.Fault {
			if fd == fa {
				closes.Add(1)
				return scheduler.Fault{Err: syscall.EINTR, After: true}
			}
			return scheduler.Fault{}
		})
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); _, err := a.Read(make([]byte, 8)); errs <- err }()
		go func() {
			defer wg.Done()
			_, err := a.Write(make([]byte, 64<<20))
			errs <- err
		}()
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, a.Close())
		wg.Wait()
		close(errs)
		for err := range errs {
			require.ErrorIs(t, err, net.ErrClosed)
		}
		require.Eventually(t, func() bool { return closes.Load() == 1 }, 3*time.Second, time.Millisecond)
		time.Sleep(10 * time.Millisecond)
		assert.EqualValues(t, 1, closes.Load(), "fd closed more than once")
		require.NoError(t, b.Close())
	})
}
