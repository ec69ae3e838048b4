//go:build linux && uring

package uring

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Completion I/O (loop.Completer): an IORING_OP_RECV per receiving
// socket, its bytes landing in a buffer of one of the loop's two
// provided-buffer rings, and IORING_OP_SEND requests. The rings are made
// on the first Recv, each up to bufCount buffers (mapped, touched as
// used) that every socket of the loop draws from, so an idle socket holds
// none. A buffer goes back to its ring as soon as its callback returns.
//
// A ring starts with bufStart buffers and doubles, up to bufCount, after
// an iteration in which receives found it empty (ENOBUFS, then received
// again). The kernel takes buffers in ring order and a returned one goes
// to the back, so every buffer in a ring is soon touched: a loop whose
// receives never overlap touches bufStart buffers' first pages, not
// bufCount's (TestBufRingGrowsOnDemand; the bench's idle rows).
//
// The two rings differ in their buffers' size, and a socket's receive
// takes from the one its traffic needs, as Netty's adaptive receive
// buffers do: small buffers (bufSmall, eight to a page) at first, large
// ones (bufLarge) from a receive that filled a small one, until two in a
// row would have fitted a small one. A burst of small messages then
// touches a page per eight buffers instead of a page per buffer (the
// idle rows' 32 dials at a time grew a ring to 32 buffers, whose first
// pages were 128 KiB when every buffer was large; 32 small buffers span
// four pages, 16 KiB), and a large
// transfer still moves bufLarge bytes per completion
// (TestRecvSizeAdapts).
//
// A receive is one-shot, submitted again with the next enter after each
// completion, for the reason the level watches are one-shot polls: its
// wake-ups run as task work of the thread that submitted it, and a
// multishot one stays with the thread the loop goroutine was on when it
// went out (BenchmarkEcho measures both; see the package documentation).
const (
	opSend = 26
	opRecv = 27

	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT
	recvMultishot   = 1 << 1 // IORING_RECV_MULTISHOT, in sqe.ioprio
	cqeFBuffer      = 1 << 0 // IORING_CQE_F_BUFFER
	registerPbuf    = 22     // IORING_REGISTER_PBUF_RING
	unregisterPbuf  = 23     // IORING_UNREGISTER_PBUF_RING

	bufCount = 128 // buffers a ring holds at most; a power of two
	bufStart = 8   // buffers in a ring at first
	bufSmall = 512
	bufLarge = 16384

	// The buffer groups, which index Loop.br; a buffer's id is
	// group*bufCount plus its index in its ring.
	groupSmall uint16 = 0
	groupLarge uint16 = 1

	kindRecv = 4
	kindSend = 5
)

// recvMulti makes Recv's request multishot (IORING_RECV_MULTISHOT); only
// BenchmarkEcho sets it, to measure that variant.
var recvMulti = false

// bufRing is a provided-buffer ring: the ring of io_uring_buf entries the
// kernel takes buffers from, and the buffers, both mapped anonymously
// (the kernel writes them; the garbage collector never moves them).
type bufRing struct {
	entries []byte // bufCount io_uring_buf {addr u64, len u32, bid u16, resv u16}; tail overlays resv of entry 0
	bufs    []byte
	size    int    // bytes per buffer
	group   uint16 // the buffer group: the ring's index in Loop.br
	tail    uint16
	given   uint16 // buffers 0..given-1 have been handed to the kernel
	short   bool   // a receive found the ring empty: grow before the next enter
}

// recvBlock holds the receives of recvBlockLen consecutive fd numbers:
// each one's receiver, as its id in l.rcvs (0 when the fd receives
// nothing; while it is not, a request of the receive is queued or in the
// kernel: a completion that does not end the receive arms the next), and
// the generation of its request, which moves on each time a receive ends,
// so that a late completion of an abandoned request is recognised, also
// after the fd number was reused; above the generation's bits, the ring
// the fd's receives take buffers from (recvLarge, recvFits: adapt). Two
// arrays, 6 bytes per fd, where an array of {id, generation} pairs would
// pad each pair to 8; nothing else is kept per receiving socket
// (TestRecvEntrySize).
type recvBlock struct {
	rid [recvBlockLen]uint16
	gen [recvBlockLen]uint32
}

const recvBlockLen = 1024 // 6 KiB blocks, a size class of their own

// recvEntry is an fd's place in its block.
type recvEntry struct {
	b *recvBlock
	i int
}

func (e recvEntry) id() uint16 { return e.b.rid[e.i] }

func (e recvEntry) gen() uint32 { return e.b.gen[e.i] & genMask }

const (
	recvLarge = 1 << 24 // the fd's receives take large buffers
	recvFits  = 1 << 25 // its last receive, into a large buffer, fitted a small one
)

// group is the buffer group of the fd's next receive.
func (e recvEntry) group() uint16 {
	if e.b.gen[e.i]&recvLarge != 0 {
		return groupLarge
	}
	return groupSmall
}

// adapt chooses the ring of the fd's next receive after one that got n
// bytes: the large one after a small buffer came back full, the small one
// after two receives in a row that it would have held.
func (e recvEntry) adapt(n int) {
	g := e.b.gen[e.i]
	switch {
	case g&recvLarge == 0:
		if n >= bufSmall {
			g |= recvLarge
		}
	case n > bufSmall:
		g &^= recvFits
	case g&recvFits != 0:
		g &^= recvLarge | recvFits
	default:
		g |= recvFits
	}
	e.b.gen[e.i] = g
}

// recvTable holds the receives by fd, in fixed blocks made when an fd of
// their range first receives: fd numbers are dense, so the table is about
// as large as the sockets that receive, it leaves no outgrown arrays
// behind, and an fd keeps its generation across its owners.
type recvTable struct {
	blocks []*recvBlock
}

// at returns fd's entry, its block made if need be.
func (t *recvTable) at(fd int32) recvEntry {
	i := int(fd) / recvBlockLen
	if i >= len(t.blocks) {
		t.blocks = append(t.blocks, make([]*recvBlock, i+1-len(t.blocks))...)
	}
	if t.blocks[i] == nil {
		t.blocks[i] = new(recvBlock)
	}
	return recvEntry{t.blocks[i], int(fd) % recvBlockLen}
}

// get returns fd's entry and whether it has a receive.
func (t *recvTable) get(fd int32) (recvEntry, bool) {
	i := int(fd) / recvBlockLen
	if fd < 0 || i >= len(t.blocks) || t.blocks[i] == nil {
		return recvEntry{}, false
	}
	e := recvEntry{t.blocks[i], int(fd) % recvBlockLen}
	return e, e.id() != 0
}

// clear drops every receiver.
func (t *recvTable) clear() {
	for _, b := range t.blocks {
		if b != nil {
			clear(b.rid[:])
		}
	}
}

// sendOp is one Send in flight, in l.sends. Sends are not handed out, so
// theirs are reused: a message allocates nothing.
type sendOp struct {
	send func(n int, err error)
	p    *byte // the first byte sent: the buffer stays reachable until the completion
	slot int32
	gen  uint32
}

// opData is the user_data of a request of kind for the slot and
// generation of its op.
func opData(kind uint64, slot int32, gen uint32) uint64 {
	return kind<<56 | uint64(gen&genMask)<<32 | uint64(uint32(slot))
}

func recvData(fd int32, gen uint32) uint64 { return opData(kindRecv, fd, gen) }

// setupBufs maps and registers the buffer rings.
func (l *Loop) setupBufs() error {
	if l.br[0] != nil {
		return nil
	}
	var br [2]*bufRing
	for g, size := range [2]int{groupSmall: bufSmall, groupLarge: bufLarge} {
		b, err := l.newBufRing(uint16(g), size)
		if err != nil {
			if br[0] != nil {
				l.dropBufRing(br[0])
			}
			return err
		}
		br[g] = b
	}
	l.br = br
	return nil
}

// bufReg is struct io_uring_buf_reg.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	pad         uint16
	resv        [3]uint64
}

// newBufRing maps and registers buffer group g, of buffers of size bytes.
func (l *Loop) newBufRing(g uint16, size int) (*bufRing, error) {
	entries, err := unix.Mmap(-1, 0, bufCount*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	bufs, err := unix.Mmap(-1, 0, bufCount*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		_ = unix.Munmap(entries)
		return nil, os.NewSyscallError("mmap", err)
	}
	reg := bufReg{ringAddr: uint64(uintptrOf(&entries[0])), ringEntries: bufCount, bgid: g}
	if _, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(l.r.fd), registerPbuf, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); e != 0 {
		_ = unix.Munmap(entries)
		_ = unix.Munmap(bufs)
		return nil, os.NewSyscallError("io_uring_register", e)
	}
	b := &bufRing{entries: entries, bufs: bufs, size: size, group: g}
	b.grow(bufStart)
	return b, nil
}

// unmap unmaps the ring's memory; the kernel must be done with it.
func (b *bufRing) unmap() error {
	return errors.Join(os.NewSyscallError("munmap", unix.Munmap(b.entries)), os.NewSyscallError("munmap", unix.Munmap(b.bufs)))
}

// dropBufRing unregisters and unmaps a ring no receive has used.
func (l *Loop) dropBufRing(b *bufRing) {
	reg := bufReg{bgid: b.group}
	_, _, _ = unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(l.r.fd), unregisterPbuf, uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
	_ = b.unmap()
}

// grow hands the kernel n more buffers, never past bufCount.
func (b *bufRing) grow(n int) {
	n = min(n, bufCount-int(b.given))
	for range n {
		b.put(b.group*bufCount + b.given)
		b.given++
	}
	if n > 0 {
		b.publish()
	}
}

// buf returns buffer bid's first n bytes.
func (b *bufRing) buf(bid uint16, n int) []byte {
	off := int(bid%bufCount) * b.size
	return b.bufs[off : off+n]
}

// put hands buffer bid back to the kernel (visible after publish).
func (b *bufRing) put(bid uint16) {
	e := b.entries[int(b.tail&(bufCount-1))*16:]
	*(*uint64)(unsafe.Pointer(&e[0])) = uint64(uintptrOf(&b.bufs[int(bid%bufCount)*b.size]))
	*(*uint32)(unsafe.Pointer(&e[8])) = uint32(b.size)
	*(*uint16)(unsafe.Pointer(&e[12])) = bid
	b.tail++
}

// ringOf returns the ring buffer bid belongs to.
func (l *Loop) ringOf(bid uint16) *bufRing { return l.br[bid/bufCount] }

// publish stores the tail where the kernel reads it (the resv field of
// entry 0), after the entries.
func (b *bufRing) publish() {
	// A 16-bit store ordered after the entries': the tail shares a 32-bit
	// word with entry 0's bid, which only put writes, from this goroutine.
	p := (*uint32)(unsafe.Pointer(&b.entries[12]))
	v := atomic.LoadUint32(p)
	atomic.StoreUint32(p, v&0xffff|uint32(b.tail)<<16)
}

// endRecv ends e's receive; a late completion of its request is not
// delivered (the generation moves on).
func (l *Loop) endRecv(e recvEntry) {
	l.rcvs.drop(e.id())
	e.b.rid[e.i] = 0
	g := e.b.gen[e.i]
	e.b.gen[e.i] = g&^genMask | (g+1)&genMask
}

func (l *Loop) checkFD(op string, fd int) error {
	switch {
	case l.closed:
		return fmt.Errorf("uring: %s fd %d: %w", op, fd, loop.ErrClosed)
	case fd < 0 || fd > math.MaxInt32:
		return fmt.Errorf("uring: %s fd %d: %w", op, fd, os.NewSyscallError("fcntl", unix.EBADF))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("uring: %s fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	return nil
}

// Recv receives on fd with an IORING_OP_RECV into the loop's provided
// buffers; see loop.Completer.
func (l *Loop) Recv(fd int, r loop.Receiver) error {
	if err := l.checkFD("recv", fd); err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("uring: recv fd %d: nil receiver: %w", fd, os.ErrInvalid)
	}
	e := l.recvs.at(int32(fd))
	if e.id() != 0 {
		return fmt.Errorf("uring: recv fd %d: already receiving: %w", fd, os.ErrExist)
	}
	if err := l.setupBufs(); err != nil {
		return fmt.Errorf("uring: recv fd %d: %w", fd, err)
	}
	id, err := l.rcvs.add(r)
	if err != nil {
		return fmt.Errorf("uring: recv fd %d: %w", fd, err)
	}
	e.b.rid[e.i] = id
	l.armRecv(int32(fd), e)
	return nil
}

func (l *Loop) armRecv(fd int32, e recvEntry) {
	s := l.sqe()
	s.opcode = opRecv
	s.fd = fd
	if recvMulti {
		s.ioprio = recvMultishot
	}
	s.flags = sqeBufferSelect
	s.bufIndex = e.group()
	s.userData = recvData(fd, e.gen())
}

// Send writes p to fd with an IORING_OP_SEND (MSG_WAITALL: the kernel
// sends the rest of a short send itself); see loop.Completer.
//
// No fcntl checks the fd here, unlike Recv: a send is a message's cost,
// and a bad fd is reported by the kernel in the completion (EBADF).
func (l *Loop) Send(fd int, p []byte, cb func(n int, err error)) error {
	switch {
	case l.closed:
		return fmt.Errorf("uring: send fd %d: %w", fd, loop.ErrClosed)
	case fd < 0 || fd > math.MaxInt32:
		return fmt.Errorf("uring: send fd %d: %w", fd, os.NewSyscallError("fcntl", unix.EBADF))
	}
	if cb == nil {
		return fmt.Errorf("uring: send fd %d: nil callback: %w", fd, os.ErrInvalid)
	}
	if len(p) == 0 || len(p) > math.MaxInt32 {
		return fmt.Errorf("uring: send fd %d: %d bytes: %w", fd, len(p), os.ErrInvalid)
	}
	o := l.spareSend()
	o.send, o.p = cb, &p[0]
	o.slot, o.gen = l.sends.add(o, o.gen)
	s := l.sqe()
	s.opcode = opSend
	s.fd = int32(fd)
	s.addr = uint64(uintptrOf(&p[0]))
	s.len = uint32(len(p))
	s.opFlags = unix.MSG_WAITALL | unix.MSG_NOSIGNAL
	s.userData = opData(kindSend, o.slot, o.gen)
	l.inflight++
	return nil
}

// StopRecv ends fd's receive (loop.Completer): no callback runs once it
// returns. The request is cancelled at once, and StopRecv waits for its
// last completion (as a watcher's Stop does: the request holds the fd's
// file until then). If the kernel had received bytes for it by then (a
// completion not dispatched yet, or one the cancellation raced with), the
// receiver gets them before StopRecv returns, so that no byte taken from
// the socket is lost; an end of stream or an error found then is not
// reported (the socket reports it again to the next receive).
func (l *Loop) StopRecv(fd int) error {
	if fd < 0 || fd > math.MaxInt32 {
		return nil
	}
	e, ok := l.recvs.get(int32(fd))
	if !ok || l.closed || l.r == nil {
		return nil
	}
	r := l.rcvs.get(e.id())
	data := recvData(int32(fd), e.gen())
	l.endRecv(e)
	q := l.sqe()
	q.opcode = opAsyncCancel
	q.addr = data
	q.userData = ignoreData
	l.submitNow()
	l.awaitRecv(fd, data, r)
	return nil
}

// awaitRecv takes the completions of the stopped receive whose requests
// carry data, in the dispatch queue and in the CQ, until its last one,
// giving their bytes to r; it waits (bounded, as awaitAbandoned) for a
// last completion still to come.
func (l *Loop) awaitRecv(fd int, data uint64, r loop.Receiver) {
	done := false
	take := func(c *cqe) {
		if done || c.userData != data {
			return
		}
		c.userData = ignoreData
		if c.flags&cqeFMore == 0 {
			done = true
		}
		if c.flags&cqeFBuffer != 0 {
			bid := uint16(c.flags >> 16)
			if c.res > 0 {
				r.Received(fd, l.ringOf(bid).buf(bid, int(c.res)), nil)
			}
			l.giveBack(bid)
		}
	}
	for i := range 2000 {
		for j := l.cqi; j < len(l.cqes); j++ {
			take(&l.cqes[j])
		}
		l.r.each(take)
		if done || l.closed {
			return
		}
		if l.r.overflowed() {
			l.submit(false, -1) // moves kept completions into the CQ
			continue
		}
		if i > 0 {
			time.Sleep(10 * time.Microsecond)
		}
		l.submit(false, -1) // runs this thread's task work
	}
}

// spareSend returns a send op from the loop's spares.
func (l *Loop) spareSend() *sendOp {
	if n := len(l.spareSends); n > 0 {
		o := l.spareSends[n-1]
		l.spareSends[n-1] = nil
		l.spareSends = l.spareSends[:n-1]
		return o
	}
	return &sendOp{}
}

// completeSend handles the completion of a Send and reports whether a
// callback ran.
func (l *Loop) completeSend(c cqe) int {
	o := l.sends.get(int32(uint32(c.userData)))
	if o == nil || o.gen != uint32(c.userData>>32)&genMask || o.send == nil {
		return 0
	}
	l.inflight--
	o.gen = (o.gen + 1) & genMask
	l.sends.remove(o.slot, o.gen)
	cb := o.send
	o.send, o.p = nil, nil
	if len(l.spareSends) < 64 {
		l.spareSends = append(l.spareSends, o)
	}
	if c.res < 0 {
		cb(0, os.NewSyscallError("send", unix.Errno(-c.res)))
	} else {
		cb(int(c.res), nil)
	}
	return 1
}

// completeRecv handles the completion of a Recv and reports whether a
// callback ran.
func (l *Loop) completeRecv(c cqe) int {
	if c.flags&cqeFBuffer != 0 {
		// The buffer goes back to the kernel whatever becomes of the
		// request, after the callback has used it.
		defer l.giveBack(uint16(c.flags >> 16))
	}
	fd := int32(uint32(c.userData))
	e, ok := l.recvs.get(fd)
	if !ok || e.gen() != uint32(c.userData>>32)&genMask {
		return 0
	}
	more := c.flags&cqeFMore != 0
	r := l.rcvs.get(e.id())
	switch {
	case c.res > 0 && c.flags&cqeFBuffer != 0:
		bid := uint16(c.flags >> 16)
		if !more {
			// One-shot, or the kernel ended it (CQ overflow): go on, with
			// the buffer size this one calls for. A multishot request
			// keeps the group it went out with.
			e.adapt(int(c.res))
			l.armRecv(fd, e)
		}
		r.Received(int(fd), l.ringOf(bid).buf(bid, int(c.res)), nil)
		return 1
	case c.res == -int32(unix.ENOBUFS) && !more:
		// Every buffer of its ring was in use: receive again, after the
		// ring has doubled (once per iteration, however many receives
		// found it empty) while under bufCount; the buffers go back as
		// their callbacks return.
		l.br[e.group()].short = true
		l.armRecv(fd, e)
		return 0
	}
	// The end of the stream, or an error: the last call.
	if more {
		q := l.sqe()
		q.opcode = opAsyncCancel
		q.addr = c.userData
		q.userData = ignoreData
	}
	l.endRecv(e)
	if c.res == 0 {
		r.Received(int(fd), nil, io.EOF)
	} else {
		r.Received(int(fd), nil, os.NewSyscallError("recv", unix.Errno(-c.res)))
	}
	return 1
}

// giveBack returns buffer bid to the kernel's ring.
func (l *Loop) giveBack(bid uint16) {
	b := l.ringOf(bid)
	if b == nil {
		return
	}
	b.put(bid)
	b.publish()
}

var _ loop.Completer = (*Loop)(nil)
