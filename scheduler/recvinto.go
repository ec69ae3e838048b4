package scheduler

import (
	"errors"
	"io"
	"os"
	"syscall"

	"github.com/evhub/evhub/loop"
)

// Receiving into the reader's buffer (loop.BufferReceiver). On a loop
// that offers it, a stream Read that would wait for readiness and then
// call read(2) instead has the loop receive into its buffer, and wakes
// with the bytes: one system call fewer per wait.
//
// The buffer is the caller's, so a Read never returns while the kernel
// may still write it: a deadline, Close or a cancelled task context
// cancels the receive (CancelRecv returns once it completed) and the Read
// waits for that; bytes received by then are returned, as a read(2) that
// raced the deadline would have.

// recvState is a pollDesc's receive in flight, if any.
type recvState struct {
	buf  []byte // the reader's; set before the Post that submits it
	n    int
	err  error
	id   uint64 // loop goroutine only
	live bool   // loop goroutine only: the receive is in the kernel

	submitFn, cancelFn func()
	doneFn             func(n int, err error)
}

func (pd *pollDesc) initRecv() {
	r := &pd.recv
	r.submitFn = pd.submitRecv
	r.cancelFn = pd.cancelRecv
	r.doneFn = pd.recvDone
}

// submitRecv runs on the loop goroutine.
func (pd *pollDesc) submitRecv() {
	r := &pd.recv
	if pd.dead {
		pd.recvDone(0, errClosing)
		return
	}
	id, err := pd.h.recv.RecvInto(pd.fd, r.buf, r.doneFn)
	if err != nil {
		pd.recvDone(0, err)
		return
	}
	r.id, r.live = id, true
}

// cancelRecv runs on the loop goroutine; the receive's callback has run
// when it returns.
func (pd *pollDesc) cancelRecv() {
	if pd.recv.live {
		pd.h.recv.CancelRecv(pd.recv.id)
	}
}

// recvDone is the receive's callback, on the loop goroutine.
func (pd *pollDesc) recvDone(n int, err error) {
	r := &pd.recv
	r.live = false
	r.n, r.err = n, err
	pd.recvDoneFlag.Store(true)
	pd.side[modeRead].ready()
}

// recvWait has the loop receive into p and waits for the result; the
// caller holds the read lock.
func (pd *pollDesc) recvWait(p []byte) (int, error) {
	s := &pd.side[modeRead]
	t := currentTask()
	if t != nil {
		s.task.Store(t)
		defer s.task.Store(nil)
	}
	if err := pd.waitErr(s, t); err != nil {
		return 0, err
	}
	pd.recv.buf = p
	pd.recvDoneFlag.Store(false)
	if err := pd.h.post(pd.recv.submitFn); err != nil {
		pd.recv.buf = nil
		return 0, err
	}
	var reason error // why the receive was cancelled
	for !pd.recvDoneFlag.Load() {
		if reason == nil {
			if reason = pd.waitErr(s, t); reason != nil {
				// If the loop is closing, the Post fails and its Close
				// ends the receive (loop.ErrClosed) once the kernel is
				// done with p.
				_ = pd.h.post(pd.recv.cancelFn)
				continue
			}
		}
		if s.state.CompareAndSwap(stReady, stIdle) {
			continue
		}
		if !s.state.CompareAndSwap(stIdle, stWaiting) {
			continue
		}
		if pd.recvDoneFlag.Load() || (reason == nil && pd.waitErr(s, t) != nil) {
			s.state.CompareAndSwap(stWaiting, stIdle)
			continue
		}
		s.park(t)
		s.state.CompareAndSwap(stWaiting, stIdle)
	}
	pd.recv.buf = nil
	n, err := pd.recv.n, pd.recv.err
	switch {
	case n > 0:
		return n, nil
	case err == nil:
		return 0, io.EOF
	case reason != nil:
		return 0, reason
	case errors.Is(err, syscall.ECANCELED), errors.Is(err, loop.ErrClosed), err == errClosing:
		// Cancelled by Close (deregister) before the reader saw it.
		return 0, errClosing
	}
	return 0, err
}

// waitErr is why a wait on s must end now, if it must: the fd closed, the
// deadline passed, the loop failed the fd, the task's context ended.
func (pd *pollDesc) waitErr(s *waitSide, t *Task) error {
	if pd.closing.Load() {
		return errClosing
	}
	if s.dl.Load() < 0 {
		return os.ErrDeadlineExceeded
	}
	if e := pd.fatal.Load(); e != nil {
		return *e
	}
	if t != nil && t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	return nil
}

// useRecvInto lets hubs use loop.BufferReceiver; the fault-injection
// tests, whose hooks sit on read(2), turn it off.
var useRecvInto = os.Getenv("EVHUB_NO_RECVINTO") != "1"
