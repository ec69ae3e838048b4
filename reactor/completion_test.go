package reactor_test

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/reactor"
)

// compLoop gives a loop loop.Completer, done with its readiness watches,
// so that the reactor's completion path runs through the whole reactor
// suite on any backend, not only on the loops that have completion I/O.
// Its Stop reads once more and gives what it read to the callback, as a
// receive that had already taken bytes when it was stopped does.
type compLoop struct{ loop.Loop }

type fakeRecv struct {
	w    loop.IOWatcher
	fd   int
	buf  []byte
	r    loop.Receiver
	done bool
}

// fakeCalls counts the Recvs and Sends of every compLoop.
var fakeRecvs, fakeSends atomic.Int64

// compRecvs holds each compLoop's receives by fd.
var compRecvs sync.Map // loop.Loop -> map[int]*fakeRecv (loop goroutine only)

func (l compLoop) recvs() map[int]*fakeRecv {
	m, _ := compRecvs.LoadOrStore(l.Loop, map[int]*fakeRecv{})
	return m.(map[int]*fakeRecv)
}

func (l compLoop) Recv(fd int, rcv loop.Receiver) error {
	fakeRecvs.Add(1)
	if r := l.recvs()[fd]; r != nil && !r.done {
		return os.ErrExist
	}
	r := &fakeRecv{fd: fd, r: rcv, buf: make([]byte, 4096)}
	w, err := l.Watch(fd, loop.Readable, r.ready)
	if err != nil {
		return err
	}
	r.w = w
	l.recvs()[fd] = r
	return nil
}

func (r *fakeRecv) ready(loop.Events) {
	n, err := unix.Read(r.fd, r.buf)
	switch {
	case n > 0:
		r.r.Received(r.fd, r.buf[:n], nil)
	case err == unix.EAGAIN || err == unix.EINTR:
	default:
		r.done = true
		_ = r.w.Stop()
		if err == nil {
			r.r.Received(r.fd, nil, io.EOF)
		} else {
			r.r.Received(r.fd, nil, os.NewSyscallError("recv", err))
		}
	}
}

func (l compLoop) StopRecv(fd int) error {
	r := l.recvs()[fd]
	delete(l.recvs(), fd)
	if r == nil || r.done {
		return nil
	}
	r.done = true
	_ = r.w.Stop()
	if n, _ := unix.Read(r.fd, r.buf); n > 0 {
		r.r.Received(r.fd, r.buf[:n], nil)
	}
	return nil
}

// Send writes what the socket takes now and the rest as it becomes
// writable; its callback runs from the loop, never from Send.
func (l compLoop) Send(fd int, p []byte, cb func(n int, err error)) error {
	fakeSends.Add(1)
	sent := 0
	var w loop.IOWatcher
	var try func(loop.Events)
	try = func(loop.Events) {
		for sent < len(p) {
			n, err := unix.Write(fd, p[sent:])
			if n > 0 {
				sent += n
			}
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				if w == nil {
					var werr error
					if w, werr = l.Watch(fd, loop.Writable, try); werr != nil {
						cb(sent, werr)
					}
				}
				return
			case err != nil:
				if w != nil {
					_ = w.Stop()
				}
				cb(sent, os.NewSyscallError("send", err))
				return
			}
		}
		if w != nil {
			_ = w.Stop()
		}
		cb(sent, nil)
	}
	return l.Post(func() { try(0) })
}

// TestReactorCompletion runs the reactor suite on netpoll loops that
// offer completion I/O (compLoop): every case through Recv and Send.
func TestReactorCompletion(t *testing.T) {
	conformance.TestReactor(t, func() (loop.Loop, error) {
		l, err := loop.Open("netpoll")
		if err != nil {
			return nil, err
		}
		return compLoop{l}, nil
	})
	require.Positive(t, fakeRecvs.Load(), "the reactor received through Recv")
	require.Positive(t, fakeSends.Load(), "the reactor sent through Send")
}

// flood writes 8 MiB to each connection as it opens.
type flood struct{ opened, closed chan struct{} }

func (f flood) OnOpen(c *reactor.Conn) {
	_, _ = c.Write(make([]byte, 8<<20))
	f.opened <- struct{}{}
}
func (flood) OnData(*reactor.Conn) {}
func (f flood) OnClose(*reactor.Conn, error) {
	if f.closed != nil {
		f.closed <- struct{}{}
	}
}

func fdCount(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// TestCompletionCloseWithSendInFlight: a server closed while its
// connections' Sends are stuck (the peer reads nothing) closes every fd,
// those a Send in flight still named included, and the peer sees the
// connection end.
func TestCompletionCloseWithSendInFlight(t *testing.T) {
	opens := map[string]func() (loop.Loop, error){
		"netpoll+completer": func() (loop.Loop, error) {
			l, err := loop.Open("netpoll")
			if err != nil {
				return nil, err
			}
			return compLoop{l}, nil
		},
	}
	if l, err := loop.Open("uring"); err == nil {
		if _, ok := l.(loop.Completer); ok {
			opens["uring"] = func() (loop.Loop, error) { return loop.Open("uring") }
		}
		_ = l.Close()
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			fds0 := fdCount(t)
			h := flood{opened: make(chan struct{}, 4)}
			s, err := reactor.New(h, reactor.Options{NewLoop: open, Loops: 1})
			require.NoError(t, err)
			a, err := s.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			var cs []net.Conn
			for range 4 {
				c, err := net.Dial("tcp", a.String())
				require.NoError(t, err)
				cs = append(cs, c)
				<-h.opened
			}
			time.Sleep(20 * time.Millisecond) // the sends fill the sockets and wait
			require.NoError(t, s.Close())
			for _, c := range cs {
				// Everything the socket held, then the end: EOF or a reset.
				require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
				_, err := io.Copy(io.Discard, c)
				if err != nil {
					require.ErrorIs(t, err, unix.ECONNRESET)
				}
				require.NoError(t, c.Close())
			}
			require.Equal(t, fds0, fdCount(t), "no fd left open")

			// A connection closed by its idle timeout with its Send stuck:
			// the fd goes when the send has failed, the loop running on.
			h = flood{opened: make(chan struct{}, 1), closed: make(chan struct{}, 1)}
			s, err = reactor.New(h, reactor.Options{NewLoop: open, Loops: 1, IdleTimeout: 50 * time.Millisecond})
			require.NoError(t, err)
			defer s.Close()
			a, err = s.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			fds1 := fdCount(t)
			c, err := net.Dial("tcp", a.String())
			require.NoError(t, err)
			defer c.Close()
			<-h.opened
			<-h.closed
			require.Eventually(t, func() bool { return fdCount(t) == fds1+1 }, 5*time.Second, time.Millisecond,
				"the server's fd is closed once its send failed")
		})
	}
}
