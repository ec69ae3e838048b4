//go:build linux && uring

package uring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// The kernel ABI of linux/io_uring.h, as far as this package uses it.
const (
	opNop         = 0
	opPollAdd     = 6
	opPollRemove  = 7
	opAsyncCancel = 14
	opRead        = 22

	setupCQSize   = 1 << 3
	setupClamp    = 1 << 4
	setupCoopTask = 1 << 8 // IORING_SETUP_COOP_TASKRUN
	setupTaskFlag = 1 << 9 // IORING_SETUP_TASKRUN_FLAG

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1
	featExtArg     = 1 << 8
	featRsrcTags   = 1 << 10 // Linux 5.13, the release that added multishot poll

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	pollAddMulti = 1 << 0

	sqCQOverflow = 1 << 1
	sqTaskRun    = 1 << 2

	cqeFMore = 1 << 1

	offSQRing = 0
	offSQEs   = 0x10000000
)

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // poll32_events, cancel_flags, rw_flags...
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// cqe is struct io_uring_cqe (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// getEventsArg is struct io_uring_getevents_arg, the argument of
// IORING_ENTER_EXT_ARG: ts points to a relative __kernel_timespec.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	_         uint32
	ts        uint64
}

// Sizes are checked at compile time against the kernel's.
var (
	_ [64 - unsafe.Sizeof(sqe{})]struct{}
	_ [unsafe.Sizeof(sqe{}) - 64]struct{}
	_ [16 - unsafe.Sizeof(cqe{})]struct{}
	_ [120 - unsafe.Sizeof(params{})]struct{}
	_ [unsafe.Sizeof(params{}) - 120]struct{}
	_ [24 - unsafe.Sizeof(getEventsArg{})]struct{}
)

// Hooks for the tests, which simulate the places where io_uring cannot
// run; nothing else changes them.
var (
	// setupSyscall is io_uring_setup(2).
	setupSyscall = func(entries uint32, p *params) (int, error) {
		fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
	// disabledFile is the sysctl that can turn io_uring off (Linux 6.6).
	disabledFile = "/proc/sys/kernel/io_uring_disabled"
)

// ring is one io_uring instance: the ring fd and the three mappings. It is
// used from the loop goroutine only (and by New and Close).
type ring struct {
	fd     int
	sqMem  []byte // the SQ ring, and the CQ ring (IORING_FEAT_SINGLE_MMAP)
	sqeMem []byte

	sqHead, sqTail, sqFlags *uint32
	sqMask, sqEntries       uint32
	sqes                    []sqe
	tail                    uint32 // SQEs written; published to *sqTail by flush

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	// arg and ts are the wait's EXT_ARG; they live here, in the heap, so
	// that the kernel reads memory the garbage collector does not move.
	arg getEventsArg
	ts  unix.Timespec
}

// unsupported is the error New returns where io_uring cannot run: it wraps
// errors.ErrUnsupported (through loop.UnsupportedError) and the cause.
func unsupported(reason string, cause error) error {
	u := &loop.UnsupportedError{Backend: Name, Capability: "io_uring", Reason: reason}
	if cause == nil {
		return u
	}
	return fmt.Errorf("%w: %w", u, cause)
}

// setupError explains why io_uring_setup failed.
func setupError(err error) error {
	sys := os.NewSyscallError("io_uring_setup", err)
	switch {
	case errors.Is(err, unix.ENOSYS):
		return unsupported("the kernel has no io_uring (Linux 5.1 or later, built with CONFIG_IO_URING)", sys)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		switch disabledSetting() {
		case "2":
			return unsupported("io_uring is disabled for every process (sysctl kernel.io_uring_disabled = 2)", sys)
		case "1":
			return unsupported("io_uring is disabled for processes outside kernel.io_uring_group (sysctl kernel.io_uring_disabled = 1)", sys)
		}
		return unsupported("io_uring_setup was refused: a seccomp profile (containers' default one) or a security module forbids it", sys)
	case errors.Is(err, unix.EINVAL):
		return unsupported("the kernel refused the ring's parameters (Linux 5.13 or later is needed)", sys)
	}
	return fmt.Errorf("%s: %w", Name, sys)
}

// disabledSetting reads kernel.io_uring_disabled ("" if unknown).
func disabledSetting() string {
	b, err := os.ReadFile(disabledFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// newRing sets up a ring with sqEntries submission and cqEntries
// completion slots. The features it needs are checked here, so that an
// old kernel is an error wrapping errors.ErrUnsupported that names what is
// missing.
func newRing(sqEntries, cqEntries uint32) (*ring, error) {
	if disabledSetting() == "2" {
		// Setup would fail with EPERM; say why without trying.
		return nil, unsupported("io_uring is disabled for every process (sysctl kernel.io_uring_disabled = 2)", nil)
	}
	// COOP_TASKRUN: the kernel runs a completion's task work when the
	// submitting thread next enters or leaves the kernel, or wakes it if it
	// sleeps, instead of interrupting it with an IPI while it runs (see
	// the package documentation for what that IPI cost). TASKRUN_FLAG sets
	// IORING_SQ_TASKRUN while such work waits, so that a look at the CQ
	// that finds it empty knows an enter would fill it. Both need Linux
	// 5.19; an older kernel refuses them (EINVAL) and gets a ring without.
	p := params{flags: setupCQSize | setupClamp | setupCoopTask | setupTaskFlag, cqEntries: cqEntries}
	fd, err := setupSyscall(sqEntries, &p)
	if errors.Is(err, unix.EINVAL) {
		p = params{flags: setupCQSize | setupClamp, cqEntries: cqEntries}
		fd, err = setupSyscall(sqEntries, &p)
	}
	if err != nil {
		return nil, setupError(err)
	}
	r := &ring{fd: fd}
	unix.CloseOnExec(fd)
	for _, f := range []struct {
		bit  uint32
		what string
	}{
		{featSingleMmap, "IORING_FEAT_SINGLE_MMAP (Linux 5.4)"},
		{featNoDrop, "IORING_FEAT_NODROP (Linux 5.5)"},
		{featExtArg, "IORING_FEAT_EXT_ARG, a timeout on the wait (Linux 5.11)"},
		{featRsrcTags, "multishot poll (Linux 5.13)"},
	} {
		if p.features&f.bit == 0 {
			_ = r.close()
			return nil, unsupported("the kernel lacks "+f.what, nil)
		}
	}
	sqSize := uintptr(p.sqOff.array) + uintptr(p.sqEntries)*4
	if cqSize := uintptr(p.cqOff.cqes) + uintptr(p.cqEntries)*unsafe.Sizeof(cqe{}); cqSize > sqSize {
		sqSize = cqSize
	}
	if r.sqMem, err = unix.Mmap(fd, offSQRing, int(sqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		_ = r.close()
		return nil, fmt.Errorf("%s: %w", Name, os.NewSyscallError("mmap", err))
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		_ = r.close()
		return nil, fmt.Errorf("%s: %w", Name, os.NewSyscallError("mmap", err))
	}
	m := r.sqMem
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }
	r.sqHead, r.sqTail, r.sqFlags = u32(p.sqOff.head), u32(p.sqOff.tail), u32(p.sqOff.flags)
	r.sqMask, r.sqEntries = *u32(p.sqOff.ringMask), *u32(p.sqOff.ringEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), r.sqEntries)
	// The SQ array maps ring slots to SQEs; this ring uses them in order.
	array := unsafe.Slice(u32(p.sqOff.array), r.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.tail = *r.sqTail
	r.cqHead, r.cqTail = u32(p.cqOff.head), u32(p.cqOff.tail)
	r.cqMask = *u32(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&m[p.cqOff.cqes])), *u32(p.cqOff.ringEntries))
	r.arg.ts = uint64(uintptr(unsafe.Pointer(&r.ts)))
	return r, nil
}

// get returns a zeroed SQE to fill, or nil if the SQ is full (flush, then
// try again).
func (r *ring) get() *sqe {
	if r.tail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil
	}
	s := &r.sqes[r.tail&r.sqMask]
	*s = sqe{}
	r.tail++
	return s
}

// pending is the number of SQEs written and not yet consumed by the kernel.
func (r *ring) pending() uint32 {
	return r.tail - atomic.LoadUint32(r.sqHead)
}

// enter publishes the written SQEs and calls io_uring_enter: it submits
// them, and waits for one completion if wait, for at most timeout if
// timeout >= 0. EINTR and ETIME are not errors; EBUSY and EAGAIN (no room
// for completions) mean "reap, then enter again" and are returned.
func (r *ring) enter(wait bool, timeout int64) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	toSubmit := r.pending()
	minComplete := uintptr(0)
	if wait {
		minComplete = 1
	}
	flags := uintptr(enterGetEvents)
	var arg unsafe.Pointer
	var argSz uintptr
	if wait && timeout >= 0 {
		r.ts = unix.NsecToTimespec(timeout)
		flags |= enterExtArg
		arg, argSz = unsafe.Pointer(&r.arg), unsafe.Sizeof(r.arg)
	}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), minComplete, flags, uintptr(arg), argSz)
	switch errno {
	case 0, unix.EINTR, unix.ETIME:
		return nil
	}
	return os.NewSyscallError("io_uring_enter", errno)
}

// overflowed reports completions kept by the kernel for lack of CQ room;
// an enter with GETEVENTS moves them into the ring.
func (r *ring) overflowed() bool {
	return atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0
}

// taskRun reports task work that the kernel holds for this ring's
// requests until their thread next enters the kernel.
func (r *ring) taskRun() bool {
	return atomic.LoadUint32(r.sqFlags)&sqTaskRun != 0
}

// ready reports whether the CQ holds completions.
func (r *ring) ready() bool {
	return atomic.LoadUint32(r.cqTail) != atomic.LoadUint32(r.cqHead)
}

// count is how many completions in the CQ match, leaving the CQ as it
// is.
func (r *ring) count(match func(*cqe) bool) int {
	n := 0
	tail := atomic.LoadUint32(r.cqTail)
	for head := atomic.LoadUint32(r.cqHead); head != tail; head++ {
		if match(&r.cqes[head&r.cqMask]) {
			n++
		}
	}
	return n
}

// mark sets the user_data of the completions in the CQ that match (the
// kernel does not read the entries between head and tail again).
func (r *ring) mark(match func(*cqe) bool, data uint64) {
	tail := atomic.LoadUint32(r.cqTail)
	for head := atomic.LoadUint32(r.cqHead); head != tail; head++ {
		if c := &r.cqes[head&r.cqMask]; match(c) {
			c.userData = data
		}
	}
}

// each calls fn with each completion in the CQ, leaving it there (fn may
// change its user_data: the kernel does not read the entries between head
// and tail again).
func (r *ring) each(fn func(*cqe)) {
	tail := atomic.LoadUint32(r.cqTail)
	for head := atomic.LoadUint32(r.cqHead); head != tail; head++ {
		fn(&r.cqes[head&r.cqMask])
	}
}

// reap appends the CQ's completions to dst, until dst holds max of them
// (no bound if max <= 0), and frees their slots.
func (r *ring) reap(dst []cqe, max int) []cqe {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail && (max <= 0 || len(dst) < max); head++ {
		dst = append(dst, r.cqes[head&r.cqMask])
	}
	atomic.StoreUint32(r.cqHead, head)
	return dst
}

// close unmaps the rings and closes the ring fd; the kernel cancels what
// is still in flight.
func (r *ring) close() error {
	var errs []error
	if r.sqeMem != nil {
		errs = append(errs, os.NewSyscallError("munmap", unix.Munmap(r.sqeMem)))
		r.sqeMem = nil
	}
	if r.sqMem != nil {
		errs = append(errs, os.NewSyscallError("munmap", unix.Munmap(r.sqMem)))
		r.sqMem = nil
	}
	r.sqes, r.cqes = nil, nil
	if r.fd >= 0 {
		errs = append(errs, os.NewSyscallError("close", unix.Close(r.fd)))
		r.fd = -1
	}
	return errors.Join(errs...)
}
