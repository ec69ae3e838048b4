package scheduler

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/backoff"
	"github.com/evhub/evhub/internal/nbsock"
)

// maxRW caps one read or write syscall, as internal/poll does.
const maxRW = 1 << 30

// netFD is a socket on a hub: the fd, its wait state, and the reference
// count that makes Close safe against calls still in flight (the role of
// internal/poll's fdMutex). The fd is closed only when the last reference
// is dropped, after its watcher has been removed from the loop.
type netFD struct {
	pd pollDesc

	// state is refs<<1 | closedBit.
	state     atomic.Uint64
	destroyed chan struct{}

	rmu, wmu sync.Mutex // serialise readers and writers, as net does
	// drained: the last Read of this stream socket took less than it
	// asked for, so the socket was empty; on a level-armed hub the next
	// Read waits for readiness first (see Read). Under rmu.
	drained bool

	family, sotype int
	net            string
	laddr, raddr   net.Addr
	// unlink is the path a unix listener removes on Close.
	unlink string
}

const closedBit = 1

func newFD(h *Hub, sysfd, family, sotype int, network string) (*netFD, error) {
	fd := &netFD{family: family, sotype: sotype, net: network, destroyed: make(chan struct{})}
	fd.pd.init(h, sysfd)
	if err := h.track(fd); err != nil {
		return nil, err
	}
	return fd, nil
}

func (fd *netFD) sysfd() int { return fd.pd.fd }

func (fd *netFD) incref() error {
	for {
		s := fd.state.Load()
		if s&closedBit != 0 {
			return errClosing
		}
		if fd.state.CompareAndSwap(s, s+2) {
			return nil
		}
	}
}

// decref drops a reference; the last one after Close destroys the fd and
// reports true.
func (fd *netFD) decref() bool {
	if fd.state.Add(^uint64(1)) == closedBit {
		fd.destroy()
		return true
	}
	return false
}

// Close marks the fd closed, wakes every waiter, and destroys it once no
// call is in flight. It waits for the destruction it performs itself, so
// the peer sees the close when Close returns.
func (fd *netFD) Close() error {
	for {
		s := fd.state.Load()
		if s&closedBit != 0 {
			return errClosing
		}
		if fd.state.CompareAndSwap(s, (s|closedBit)+2) {
			break
		}
	}
	fd.pd.evict()
	fd.decref()
	return nil
}

// destroy removes the watcher on the loop and only then closes the fd.
func (fd *netFD) destroy() {
	h := fd.pd.h
	h.untrack(fd)
	if fd.unlink != "" {
		_ = unix.Unlink(fd.unlink)
	}
	err := h.call(func() {
		fd.pd.deregister()
		_ = closeFunc(fd.pd.fd)
	})
	if err != nil {
		// The loop is closed: no watcher of it can fire any more.
		_ = closeFunc(fd.pd.fd)
	}
	close(fd.destroyed)
}

func (fd *netFD) readLock() error {
	if err := fd.incref(); err != nil {
		return err
	}
	fd.rmu.Lock()
	return nil
}

func (fd *netFD) readUnlock() {
	fd.rmu.Unlock()
	fd.decref()
}

func (fd *netFD) writeLock() error {
	if err := fd.incref(); err != nil {
		return err
	}
	fd.wmu.Lock()
	return nil
}

func (fd *netFD) writeUnlock() {
	fd.wmu.Unlock()
	fd.decref()
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != syscall.EINTR {
			return err
		}
	}
}

func (fd *netFD) Read(p []byte) (int, error) {
	if err := fd.readLock(); err != nil {
		return 0, err
	}
	defer fd.readUnlock()
	if len(p) == 0 {
		// A zero-byte read returns at once, as in net; read(2) would
		// report 0 and look like EOF.
		return 0, nil
	}
	if err := fd.pd.prepare(modeRead); err != nil {
		return 0, err
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	if fd.drained {
		// The last read emptied the socket: a read(2) now would most
		// likely say EAGAIN (every other syscall of a ping-pong), so wait
		// for readiness first. Only on a hub whose loop arms each wait
		// (h.edge nil): arming checks the socket's state at once, so
		// bytes a short read left behind (a unix message that carried
		// descriptors ends a read early, as TCP's urgent mark does) are
		// reported all the same, where an edge registration would wait
		// for the next arrival.
		fd.drained = false
		if err := fd.pd.wait(modeRead); err != nil {
			return 0, err
		}
	}
	for {
		n, err := readFunc(fd.sysfd(), p)
		if err != nil {
			n = 0
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				if err = fd.pd.wait(modeRead); err == nil {
					continue
				}
				return 0, err
			}
			return 0, os.NewSyscallError("read", err)
		}
		if fd.sotype == syscall.SOCK_STREAM {
			if n == 0 {
				return 0, io.EOF
			}
			fd.drained = n < len(p) && fd.pd.h.edge == nil
		}
		return n, nil
	}
}

func (fd *netFD) Write(p []byte) (int, error) {
	if err := fd.writeLock(); err != nil {
		return 0, err
	}
	defer fd.writeUnlock()
	if err := fd.pd.prepare(modeWrite); err != nil {
		return 0, err
	}
	var nn int
	for {
		max := len(p)
		if max-nn > maxRW {
			max = nn + maxRW
		}
		n, err := writeFunc(fd.sysfd(), p[nn:max])
		if n > 0 {
			nn += n
		}
		if nn == len(p) && err == nil {
			return nn, nil
		}
		switch err {
		case nil:
			if n == 0 {
				return nn, io.ErrUnexpectedEOF
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err = fd.pd.wait(modeWrite); err != nil {
				return nn, err
			}
		default:
			return nn, os.NewSyscallError("write", err)
		}
	}
}

// accept returns a new non-blocking fd, backing off on EMFILE/ENFILE
// instead of spinning.
func (fd *netFD) accept() (int, unix.Sockaddr, error) {
	if err := fd.readLock(); err != nil {
		return -1, nil, err
	}
	defer fd.readUnlock()
	if err := fd.pd.prepare(modeRead); err != nil {
		return -1, nil, err
	}
	var bo backoff.Accept
	for {
		s, rsa, err := acceptFunc(fd.sysfd())
		switch {
		case err == nil:
			return s, rsa, nil
		case err == syscall.EINTR, err == syscall.ECONNABORTED:
			// A connection reset before we took it: take the next.
		case err == syscall.EAGAIN:
			if err = fd.pd.wait(modeRead); err != nil {
				return -1, nil, err
			}
		case backoff.Exhausted(err):
			if err = fd.pd.sleep(modeRead, bo.Next()); err != nil {
				return -1, nil, err
			}
		default:
			return -1, nil, os.NewSyscallError(nbsock.AcceptSyscall, err)
		}
	}
}

func (fd *netFD) recvfrom(p []byte) (int, unix.Sockaddr, error) {
	if err := fd.readLock(); err != nil {
		return 0, nil, err
	}
	defer fd.readUnlock()
	if err := fd.pd.prepare(modeRead); err != nil {
		return 0, nil, err
	}
	for {
		n, sa, err := recvfromFunc(fd.sysfd(), p, 0)
		switch err {
		case nil:
			return n, sa, nil
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err = fd.pd.wait(modeRead); err != nil {
				return 0, nil, err
			}
		default:
			return 0, nil, os.NewSyscallError("recvfrom", err)
		}
	}
}

func (fd *netFD) sendto(p []byte, sa unix.Sockaddr) (int, error) {
	if err := fd.writeLock(); err != nil {
		return 0, err
	}
	defer fd.writeUnlock()
	if err := fd.pd.prepare(modeWrite); err != nil {
		return 0, err
	}
	for {
		err := sendtoFunc(fd.sysfd(), p, 0, sa)
		switch err {
		case nil:
			return len(p), nil
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err = fd.pd.wait(modeWrite); err != nil {
				return 0, err
			}
		default:
			return 0, os.NewSyscallError("sendto", err)
		}
	}
}

// connect starts a non-blocking connect and waits for it, honouring the
// write deadline the dialer set from its context.
func (fd *netFD) connect(ra unix.Sockaddr) error {
	switch err := ignoringEINTR(func() error { return connectFunc(fd.sysfd(), ra) }); err {
	case syscall.EINPROGRESS, syscall.EALREADY:
	case nil, syscall.EISCONN:
		return nil
	default:
		return os.NewSyscallError("connect", err)
	}
	if err := fd.incref(); err != nil {
		return err
	}
	defer fd.decref()
	for {
		if err := fd.pd.wait(modeWrite); err != nil {
			return err
		}
		nerr, err := getsockoptIntFunc(fd.sysfd(), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		switch err := syscall.Errno(nerr); err {
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
		case syscall.EISCONN:
			return nil
		case 0:
			// Readiness can be spurious: make sure we are connected.
			if _, err := unix.Getpeername(fd.sysfd()); err == nil {
				return nil
			}
		default:
			return os.NewSyscallError("connect", err)
		}
	}
}

func (fd *netFD) shutdown(how int) error {
	if err := fd.incref(); err != nil {
		return err
	}
	defer fd.decref()
	return os.NewSyscallError("shutdown", unix.Shutdown(fd.sysfd(), how))
}

func (fd *netFD) setDeadline(t time.Time, read, write bool) error {
	if err := fd.incref(); err != nil {
		return err
	}
	fd.pd.setDeadline(t, read, write)
	fd.decref()
	return nil
}

func (fd *netFD) control(f func(int) error) error {
	if err := fd.incref(); err != nil {
		return err
	}
	defer fd.decref()
	return f(fd.sysfd())
}
