//go:build linux

package evio

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// nopHandler is a StreamHandler that does nothing.
type nopHandler struct{}

func (nopHandler) Opened(loop.Stream)        {}
func (nopHandler) Data(loop.Stream, []byte)  {}
func (nopHandler) Writable(loop.Stream)      {}
func (nopHandler) Closed(loop.Stream, error) {}
func (nopHandler) ListenerFailed(error)      {}

// BenchmarkWorkarounds measures what each workaround of evio's defects
// costs, alone:
//
//   - kick: a command run on the evio goroutine through the kick socket (a
//     write(2) here, a read(2) and a callback there), the wake-up that
//     cannot be lost, against evio's Wake (an eventfd write that can);
//   - post: a hop from another goroutine to the loop goroutine (every evio
//     event pays one, since callbacks must run on the goroutine of Run);
//   - peek: the MSG_PEEK recv after each read that drained a socket, which
//     finds a peer's EOF before evio reads it (half-close support);
//   - outLen: reading how much output evio still holds (reflect);
//   - fdHeadroom: the check before accepting that spares evio an EMFILE.
func BenchmarkWorkarounds(b *testing.B) {
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = l.Run() }()
	defer func() {
		l.Stop()
		time.Sleep(10 * time.Millisecond)
		_ = l.Close()
	}()
	sl, err := l.ServeStream("tcp", "127.0.0.1:0", nopHandler{})
	if err != nil {
		b.Fatal(err)
	}
	defer sl.Close()
	sv := sl.(*listener).sv
	sl.SetAcceptPaused(false)
	peer, err := net.Dial("tcp", sl.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()

	b.Run("kick", func(b *testing.B) {
		done := make(chan struct{}, 1)
		fn := func() { done <- struct{}{} }
		for range b.N {
			sv.exec(fn)
			<-done
		}
	})
	b.Run("post", func(b *testing.B) {
		done := make(chan struct{}, 1)
		fn := func() { done <- struct{}{} }
		for range b.N {
			_ = l.Post(fn)
			<-done
		}
	})
	b.Run("peek", func(b *testing.B) {
		var buf [1]byte
		var fd int
		rc, _ := peer.(*net.TCPConn).SyscallConn()
		_ = rc.Control(func(f uintptr) { fd = int(f) })
		for range b.N {
			_, _, _ = unix.Recvfrom(fd, buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		}
	})
	b.Run("outLen", func(b *testing.B) {
		done := make(chan struct{})
		sv.exec(func() { // on the evio goroutine, which owns the conn
			for range b.N {
				_ = outLen(sv.kickConn)
			}
			close(done)
		})
		<-done
	})
	b.Run("fdHeadroom", func(b *testing.B) {
		done := make(chan struct{})
		sv.exec(func() {
			for range b.N {
				_ = sv.fdHeadroom()
			}
			close(done)
		})
		<-done
	})
}
