package reactor_test

import (
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
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
	cb   func([]byte, error)
	done bool
}

// fakeCalls counts the Recvs and Sends of every compLoop.
var fakeRecvs, fakeSends atomic.Int64

func (l compLoop) Recv(fd int, cb func(p []byte, err error)) (loop.Watcher, error) {
	fakeRecvs.Add(1)
	r := &fakeRecv{fd: fd, cb: cb, buf: make([]byte, 4096)}
	w, err := l.Watch(fd, loop.Readable, r.ready)
	if err != nil {
		return nil, err
	}
	r.w = w
	return r, nil
}

func (r *fakeRecv) ready(loop.Events) {
	n, err := unix.Read(r.fd, r.buf)
	switch {
	case n > 0:
		r.cb(r.buf[:n], nil)
	case err == unix.EAGAIN || err == unix.EINTR:
	default:
		r.done = true
		_ = r.w.Stop()
		if err == nil {
			r.cb(nil, io.EOF)
		} else {
			r.cb(nil, os.NewSyscallError("recv", err))
		}
	}
}

func (r *fakeRecv) Stop() error {
	if r.done {
		return nil
	}
	r.done = true
	_ = r.w.Stop()
	if n, _ := unix.Read(r.fd, r.buf); n > 0 {
		r.cb(r.buf[:n], nil)
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
