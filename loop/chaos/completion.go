package chaos

import (
	"fmt"
	"os"

	"github.com/evhub/evhub/loop"
)

// compPart adds loop.Completer. What a completion may do within the
// contract, it does from the seed:
//
//   - Late receives: a chunk received is sometimes held back (copied) and
//     given up to MaxDelay later, in order with what follows; meanwhile
//     the inner receive is stopped, so that the bytes wait in the socket
//     (and its sender feels it) rather than pile up in the wrapper.
//   - Cut-up receives: a chunk is sometimes given in two or three pieces,
//     so that a caller sees partial input where the loop read more.
//   - Late sends: a Send's callback sometimes runs up to MaxDelay after
//     the send completed.
//
// StopRecv gives the receiver every byte still held before it returns, as
// the contract requires; an end held back is dropped then (the socket
// reports it again to the next receive).
type compPart struct {
	c    *Loop
	comp loop.Completer
}

// recv is one fd's receive through the chaos; loop goroutine only.
type recv struct {
	c      *Loop
	fd     int
	r      loop.Receiver
	q      []piece    // given by the inner loop, not yet to r
	timer  loop.Timer // the late delivery of q, if pending
	busy   bool       // giving q to r (a callback may stop the receive)
	paused bool       // the inner receive is stopped until the late delivery
}

// piece is a chunk received or the end of the receive.
type piece struct {
	p      []byte
	err    error
	copied bool // p is the wrapper's copy, recycled once given
}

// copyOf copies b into a spare buffer: a held-back chunk is copied, and
// the copies are reused, so that the wrapper's garbage does not weigh on
// the heap figures of the code it tests.
func (c *Loop) copyOf(b []byte) []byte {
	if n := len(c.spare); n > 0 && cap(c.spare[n-1]) >= len(b) {
		buf := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return append(buf[:0], b...)
	}
	return append(make([]byte, 0, max(len(b), spareSize)), b...)
}

func (c *Loop) recycle(b []byte) {
	if cap(b) >= spareSize && len(c.spare) < 256 {
		c.spare = append(c.spare, b)
	}
}

const spareSize = 16 << 10

// Recv receives through the chaos.
func (cp compPart) Recv(fd int, r loop.Receiver) error {
	c := cp.c
	if _, ok := c.recvs[fd]; ok {
		// Receiving still, for the caller: its end may be held back.
		return fmt.Errorf("chaos: recv fd %d: already receiving: %w", fd, os.ErrExist)
	}
	st := &recv{c: c, fd: fd, r: r}
	c.recvs[fd] = st
	if err := cp.comp.Recv(fd, c.received); err != nil {
		delete(c.recvs, fd)
		return err
	}
	return nil
}

// receiver is the wrapper's one loop.Receiver of the inner loop's
// receives, for every fd.
type receiver struct{ c *Loop }

func (rc *receiver) Received(fd int, p []byte, err error) {
	st := rc.c.recvs[fd]
	if st == nil {
		return
	}
	c := st.c
	// Given now, p's pieces need no copy: the receiver has them before
	// this call returns (a StopRecv among them gives it the rest). Held
	// back, or queued behind a give under way, they are copies.
	now := st.timer == nil && !st.busy && !c.chance(c.opt.Delay)
	add := func(b []byte) {
		if now {
			st.q = append(st.q, piece{p: b})
		} else {
			st.q = append(st.q, piece{p: c.copyOf(b), copied: true})
		}
	}
	switch {
	case err != nil:
		st.q = append(st.q, piece{err: err})
	case len(p) > 1 && c.chance(c.opt.Delay):
		cut := 1 + c.rnd.IntN(len(p)-1)
		add(p[:cut])
		add(p[cut:])
	default:
		add(p)
	}
	switch {
	case now:
		st.give()
	case st.timer == nil && !st.busy:
		st.timer = c.inner.Timer(c.delay(), 0, st.late)
		if err == nil { // an end has stopped the inner receive already
			st.paused = true
			_ = c.comp.StopRecv(fd) // what it still gives joins the queue
		}
	}
	// Otherwise the pending late delivery, or the give under way, takes
	// these too, in order.
}

func (st *recv) late() {
	st.timer = nil
	st.give()
	if !st.paused || st.c.recvs[st.fd] != st {
		return
	}
	st.paused = false
	if err := st.c.comp.Recv(st.fd, st.c.received); err != nil {
		st.end()
		st.r.Received(st.fd, nil, err)
	}
}

// give hands r what is queued, in order, until the queue is empty or the
// receive ended (an end, or r stopped it).
func (st *recv) give() {
	if st.busy {
		return // an outer give goes on with the queue
	}
	st.busy = true
	defer func() { st.busy = false }()
	for len(st.q) > 0 && st.c.recvs[st.fd] == st {
		pc := st.q[0]
		st.q = st.q[1:]
		if pc.err != nil {
			st.end()
		}
		st.hand(pc)
	}
}

// hand gives r one piece, and its buffer back to the spares once r is
// done with it.
func (st *recv) hand(pc piece) {
	st.r.Received(st.fd, pc.p, pc.err)
	if pc.copied {
		st.c.recycle(pc.p)
	}
}

// end forgets the receive: nothing more reaches r.
func (st *recv) end() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if st.c.recvs[st.fd] == st {
		delete(st.c.recvs, st.fd)
	}
	st.q = nil
}

// StopRecv ends fd's receive after giving r every byte held back, and
// what the inner loop's StopRecv gives.
func (cp compPart) StopRecv(fd int) error {
	st := cp.c.recvs[fd]
	if st == nil {
		return cp.comp.StopRecv(fd)
	}
	// The inner receive's last bytes join the queue (Received), then
	// the queue goes to r here, whether or not a give is under way; an
	// end in it is dropped, as the contract says.
	err := cp.comp.StopRecv(fd)
	q := st.q
	st.end()
	for _, pc := range q {
		if pc.err == nil {
			st.hand(pc)
		}
	}
	return err
}

// Send sends through the inner loop; its callback is sometimes late.
func (cp compPart) Send(fd int, p []byte, cb func(n int, err error)) error {
	c := cp.c
	return cp.comp.Send(fd, p, func(n int, err error) {
		if !c.chance(c.opt.Delay) {
			cb(n, err)
			return
		}
		c.inner.Timer(c.delay(), 0, func() { cb(n, err) })
	})
}
