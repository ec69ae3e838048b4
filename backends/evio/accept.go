//go:build linux

package evio

import (
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Accepting: evio accepts by itself and ends its whole server when an
// accept fails with anything but EAGAIN, so the listening fds are armed on
// evio's poller only while an Accept waits and descriptors are free. Also
// the listener the scheduler closes.

// applyAccept arms or disarms the listening fds on evio's poller: armed
// while the scheduler wants connections and descriptors are free. evio
// ends its whole server, closing every connection, when accept fails with
// anything but EAGAIN; so with no descriptor to spare the listener stays
// disarmed and this retries with the delays of the fd-based Accept on
// EMFILE (internal/backoff). Evio goroutine only.
func (sv *server) applyAccept() {
	if sv.lnClosed {
		return
	}
	want := sv.acceptWanted.Load()
	if want && !sv.fdHeadroom() {
		want = false
		d := sv.backoff.Next()
		sv.retryMu.Lock()
		if sv.retry != nil {
			sv.retry.Stop()
		}
		sv.retry = time.AfterFunc(d, func() { sv.exec(sv.applyAccept) })
		sv.retryMu.Unlock()
	} else if want {
		sv.backoff.Reset()
	}
	if want == sv.acceptOn {
		return
	}
	var ev uint32
	if want {
		ev = unix.EPOLLIN
	}
	for _, fd := range sv.lnFDs {
		// One of them is registered; the other is net's copy.
		_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
	}
	sv.acceptOn = want
}

// fdHeadroom reports whether two descriptors are free: one for evio's
// accept and one for the stream's duplicate. It duplicates evio's epoll fd
// twice (no path lookup). Evio goroutine only.
func (sv *server) fdHeadroom() bool {
	a, err := unix.FcntlInt(uintptr(sv.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return false
	}
	b, err := unix.FcntlInt(uintptr(sv.epfd), unix.F_DUPFD_CLOEXEC, 0)
	_ = unix.Close(a)
	if err != nil {
		return false
	}
	_ = unix.Close(b)
	return true
}

// closeListener stops accepting without stopping the server (which would
// close every connection): the listening fds leave evio's poller, and
// then the socket is shut down, so connecting fails with ECONNREFUSED;
// done runs after that. Evio goroutine only.
//
// The shutdown waits for the next kick: evio may still hold an event of
// the listener from the poll that ran this, and its accept on a shut-down
// socket fails with EINVAL, which ends evio's whole server. A kick queued
// now is seen by a later poll, which no longer reports the listener.
func (sv *server) closeListener(done func()) {
	if sv.lnClosed {
		done()
		return
	}
	sv.lnClosed = true
	for _, fd := range sv.lnFDs {
		_ = unix.EpollCtl(sv.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	sv.exec(func() {
		sv.lnMu.Lock()
		if sv.lnDup >= 0 {
			_ = unix.Shutdown(sv.lnDup, unix.SHUT_RDWR)
		}
		sv.lnMu.Unlock()
		done()
	})
}

// findListener returns evio's fds of the listening socket bound to addr,
// and a close-on-exec duplicate of one (-1 if none was found). evio keeps
// them private; they are found by their address among the process's
// listening sockets, and the duplicate is checked again, so a descriptor
// reused meanwhile cannot be mistaken for it.
func findListener(addr net.Addr) (fds []int, dup int) {
	dup = -1
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, -1
	}
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == self {
			continue
		}
		if isListenerOf(fd, addr) {
			fds = append(fds, fd)
		}
	}
	_ = d.Close()
	for _, fd := range fds {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if isListenerOf(nfd, addr) {
			return fds, nfd
		}
		_ = unix.Close(nfd)
	}
	return fds, -1
}

func isListenerOf(fd int, addr net.Addr) bool {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	a := sockaddrAddr(sa)
	return a != nil && a.Network() == addr.Network() && a.String() == addr.String()
}

// sockaddrAddr converts a stream socket's address to net's type.
func sockaddrAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// listener is a StreamListener on a server.
type listener struct {
	sv   *server
	once sync.Once
}

func (ln *listener) Addr() net.Addr { return ln.sv.addr }

func (ln *listener) Close() error {
	first := false
	ln.once.Do(func() {
		first = true
		sv := ln.sv
		sv.lnClosing.Store(true)
		done := make(chan struct{})
		sv.exec(func() { sv.closeListener(func() { close(done) }) })
		select {
		case <-done:
		case <-sv.done:
		}
		sv.lnMu.Lock()
		if sv.lnDup >= 0 {
			_ = unix.Close(sv.lnDup)
			sv.lnDup = -1
		}
		sv.lnMu.Unlock()
		if sv.unlink != "" {
			_ = unix.Unlink(sv.unlink)
		}
	})
	if !first {
		return net.ErrClosed
	}
	return nil
}

// SetAcceptPaused arms or disarms accepting (loop.StreamListener).
func (ln *listener) SetAcceptPaused(paused bool) {
	if ln.sv.acceptWanted.Swap(!paused) == !paused {
		return
	}
	ln.sv.exec(ln.sv.applyAccept)
}

func (ln *listener) Control(f func(fd uintptr)) error {
	sv := ln.sv
	sv.lnMu.Lock()
	defer sv.lnMu.Unlock()
	if sv.lnDup < 0 {
		if sv.lnClosing.Load() {
			return net.ErrClosed
		}
		return &loop.UnsupportedError{Backend: Name, Capability: "listener-fd",
			Reason: "evio's listening descriptor was not found"}
	}
	f(uintptr(sv.lnDup))
	return nil
}
