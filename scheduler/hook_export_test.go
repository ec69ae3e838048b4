package scheduler

import (
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/nbsock"
)

// Fault injection for the scheduler's syscalls, in the manner of Go's
// net/internal/socktest: in test builds every hook of hook_unix.go goes
// through Faults, a switch whose filters make a call fail, come back
// short, or report a different result, and which keeps the set of sockets
// opened and not yet closed, so a test can prove that a fault leaked none.

// Call names a hooked syscall.
type Call int

// The hooked calls.
const (
	CallSocket Call = iota
	CallAccept
	CallConnect
	CallRead
	CallWrite
	CallRecvfrom
	CallSendto
	CallClose
	CallSetsockopt
	CallGetsockopt
	numCalls
)

// Fault is a filter's decision for one call. The zero Fault lets the call
// through untouched.
type Fault struct {
	// Err is returned instead of the call's result. The call is not made
	// (it never reached the kernel), unless After is set.
	Err error
	// After makes the call first and then returns Err in place of its
	// result: a close interrupted after it released the fd, a connect
	// reported in progress whatever it did.
	After bool
	// Short, if positive, passes at most Short bytes to a read or write.
	Short int
	// SoError, if set, replaces getsockopt(SO_ERROR)'s answer.
	SoError syscall.Errno
}

// Filter decides the fault for one call on the socket fd (-1 for socket).
type Filter func(fd int) Fault

// Switch routes the hooked calls through filters.
type Switch struct {
	filters [numCalls]atomic.Pointer[Filter]
	hits    [numCalls]atomic.Int64

	mu   sync.Mutex
	open map[int]bool
}

// Faults is the switch every hooked call goes through in test builds.
var Faults = &Switch{open: map[int]bool{}}

// Set installs f for call c (nil removes it).
func (sw *Switch) Set(c Call, f Filter) {
	if f == nil {
		sw.filters[c].Store(nil)
		return
	}
	sw.filters[c].Store(&f)
}

// Reset removes every filter and zeroes the hit counts.
func (sw *Switch) Reset() {
	for c := range numCalls {
		sw.filters[c].Store(nil)
		sw.hits[c].Store(0)
	}
}

// Hits reports how many calls of c a filter faulted.
func (sw *Switch) Hits(c Call) int64 { return sw.hits[c].Load() }

// Open returns the sockets opened (socket, accept) and not closed since.
func (sw *Switch) Open() map[int]bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	out := make(map[int]bool, len(sw.open))
	for fd := range sw.open {
		out[fd] = true
	}
	return out
}

func (sw *Switch) fault(c Call, fd int) Fault {
	p := sw.filters[c].Load()
	if p == nil {
		return Fault{}
	}
	f := (*p)(fd)
	if f != (Fault{}) {
		sw.hits[c].Add(1)
	}
	return f
}

func (sw *Switch) opened(fd int) {
	sw.mu.Lock()
	sw.open[fd] = true
	sw.mu.Unlock()
}

func (sw *Switch) closed(fd int) {
	sw.mu.Lock()
	delete(sw.open, fd)
	sw.mu.Unlock()
}

func short(p []byte, f Fault) []byte {
	if f.Short > 0 && len(p) > f.Short {
		return p[:f.Short]
	}
	return p
}

func init() {
	sw := Faults
	realSocket, realAccept, realConnect := socketFunc, acceptFunc, connectFunc
	realRead, realWrite, realRecvfrom, realSendto := readFunc, writeFunc, recvfromFunc, sendtoFunc
	realClose, realSetsockopt, realGetsockopt := closeFunc, setsockoptIntFunc, getsockoptIntFunc

	socketFunc = func(family, sotype, proto int) (int, error) {
		f := sw.fault(CallSocket, -1)
		if f.Err != nil && !f.After {
			return -1, f.Err
		}
		s, err := realSocket(family, sotype, proto)
		if err == nil {
			sw.opened(s)
			if f.Err != nil {
				sw.closed(s)
				_ = realClose(s)
				return -1, f.Err
			}
		}
		return s, err
	}
	acceptFunc = func(fd int) (int, unix.Sockaddr, error) {
		f := sw.fault(CallAccept, fd)
		if f.Err != nil && !f.After {
			return -1, nil, f.Err
		}
		s, sa, err := realAccept(fd)
		if err == nil {
			if f.Err != nil {
				_ = realClose(s)
				return -1, nil, f.Err
			}
			sw.opened(s)
		}
		return s, sa, err
	}
	connectFunc = func(fd int, sa unix.Sockaddr) error {
		f := sw.fault(CallConnect, fd)
		if f.Err != nil && !f.After {
			return f.Err
		}
		err := realConnect(fd, sa)
		if f.Err != nil {
			return f.Err
		}
		return err
	}
	getsockoptIntFunc = func(fd, level, opt int) (int, error) {
		f := sw.fault(CallGetsockopt, fd)
		if f.Err != nil && !f.After {
			return 0, f.Err
		}
		v, err := realGetsockopt(fd, level, opt)
		if f.Err != nil {
			return 0, f.Err
		}
		if f.SoError != 0 && err == nil && level == unix.SOL_SOCKET && opt == unix.SO_ERROR {
			v = int(f.SoError)
		}
		return v, err
	}
	setsockoptIntFunc = func(fd, level, opt, value int) error {
		f := sw.fault(CallSetsockopt, fd)
		if f.Err != nil && !f.After {
			return f.Err
		}
		err := realSetsockopt(fd, level, opt, value)
		if f.Err != nil {
			return f.Err
		}
		return err
	}
	readFunc = func(fd int, p []byte) (int, error) {
		f := sw.fault(CallRead, fd)
		if f.Err != nil && !f.After {
			return -1, f.Err
		}
		n, err := realRead(fd, short(p, f))
		if f.Err != nil {
			return -1, f.Err
		}
		return n, err
	}
	writeFunc = func(fd int, p []byte) (int, error) {
		f := sw.fault(CallWrite, fd)
		if f.Err != nil && !f.After {
			return -1, f.Err
		}
		n, err := realWrite(fd, short(p, f))
		if f.Err != nil {
			return -1, f.Err
		}
		return n, err
	}
	recvfromFunc = func(fd int, p []byte, flags int) (int, unix.Sockaddr, error) {
		f := sw.fault(CallRecvfrom, fd)
		if f.Err != nil && !f.After {
			return -1, nil, f.Err
		}
		n, sa, err := realRecvfrom(fd, p, flags)
		if f.Err != nil {
			return -1, nil, f.Err
		}
		return n, sa, err
	}
	sendtoFunc = func(fd int, p []byte, flags int, to unix.Sockaddr) error {
		f := sw.fault(CallSendto, fd)
		if f.Err != nil && !f.After {
			return f.Err
		}
		err := realSendto(fd, p, flags, to)
		if f.Err != nil {
			return f.Err
		}
		return err
	}
	closeFunc = func(fd int) error {
		f := sw.fault(CallClose, fd)
		if f.Err != nil && !f.After {
			return f.Err
		}
		sw.closed(fd)
		err := realClose(fd)
		if f.Err != nil {
			return f.Err
		}
		return err
	}
}

// AcceptName is the syscall name in accept's errors on this platform.
const AcceptName = nbsock.AcceptSyscall
