//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Run runs the loop until Stop or Close. A Stop that came while the loop
// was not running makes Run return after one iteration.
func (l *Loop) Run() error {
	if err := l.enter("run"); err != nil {
		return err
	}
	defer l.leave()
	l.rearm()
	if l.stopReq.Load() {
		l.trigger(l.stopFn)
	}
	for {
		if err := l.poll(); err != nil {
			return err
		}
		if l.closed || l.stopReq.Swap(false) {
			return nil
		}
	}
}

// RunOnce runs one iteration: one batch of I/O, the due timers and the
// posted functions. With block it first waits for one of them. It may
// return having run nothing (a spurious wake-up). A pending Stop is
// consumed by it.
func (l *Loop) RunOnce(block bool) error {
	if err := l.enter("run once"); err != nil {
		return err
	}
	defer l.leave()
	l.once, l.onceDone, l.onceTrig, l.onceIO, l.onceTimers = true, false, false, false, false
	l.onceID++
	l.rearm()
	if !block {
		l.endOnce()
	}
	err := l.poll()
	l.stopReq.Store(false)
	return err
}

func (l *Loop) enter(op string) error {
	switch {
	case l.closed:
		return fmt.Errorf("gnet: %s: %w", op, loop.ErrClosed)
	case l.running:
		return fmt.Errorf("gnet: %s: loop is already running", op)
	case l.poller == nil:
		return fmt.Errorf("gnet: %s: loop has no poller: %w", op, l.werr)
	}
	l.running = true
	return nil
}

func (l *Loop) leave() {
	l.running = false
	l.once = false
	if l.inPoll {
		// A callback panicked through Polling: re-wake or replace the
		// poller before the panic goes on.
		l.inPoll, l.inEvent = false, false
		l.bw.End() // what was posted is drained by the next Polling
		switch {
		case l.closed:
			_ = l.release()
		case l.keeps():
			_ = l.rewake()
		default:
			_ = l.swap()
		}
	}
}

// poll runs Polling until a task ends it.
//
// Polling returns from inside its chores, before it clears its wake-up
// flag: a Trigger on that poller would then queue its task without
// writing the eventfd, and nothing would wake Polling for it (see "Ending
// Polling" in the package doc). Where the eventfd is known (Linux), rewake
// writes it once, which is exactly the write Trigger skipped: the next
// Polling finds it, runs whatever was queued and clears the flag, and the
// poller is kept. With one poller it must be: it holds the watched fds.
// With two (nested), and after a panic or a poller error there, swap
// replaces the poller that runs instead, unless reuse. Both are measured
// in BenchmarkRunOnce.
func (l *Loop) poll() error {
	l.gen++ // nothing collected is pending
	l.releaseQuarantine()
	l.inPoll = true
	err := l.poller.Polling(l.pollCb)
	l.inPoll = false
	if l.closed { // by a callback
		l.stopReq.Store(false)
		return l.release()
	}
	if err != nil && !errors.Is(err, errShutdown) {
		if l.keeps() {
			_ = l.rewake()
		} else {
			_ = l.swap()
		}
		return fmt.Errorf("gnet: poll: %w", err)
	}
	if l.keeps() {
		if err := l.rewake(); err != nil {
			return fmt.Errorf("gnet: wake poller: %w", os.NewSyscallError("write", err))
		}
		return nil
	}
	return l.swap()
}

// keeps reports whether the poller is kept after Polling returns: always
// with one poller, with reuse when nested.
func (l *Loop) keeps() bool { return l.wakeFD >= 0 && (!l.nested || l.reuse) }

// rewake makes the next Polling of poller run its chores.
func (l *Loop) rewake() error {
	var one [8]byte // eventfd adds a host-endian uint64; 1 is all it takes
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(l.wakeFD, one[:])
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The counter is full, so the eventfd is readable anyway.
			return nil
		}
		return err
	}
}

// swap (nested only) replaces the poller that runs with a fresh one. Only
// the registration poller's fd and the timer source are registered on it;
// the watched fds live in the registration poller, untouched, edge state
// included.
func (l *Loop) swap() error {
	p, err := l.openPoller()
	l.pmu.Lock()
	old := l.poller
	l.poller = p // nil on error: the loop is broken, wake-ups go nowhere
	l.wakeFD = -1
	if p != nil {
		l.wakeFD = wakeFD(p)
	}
	l.pmu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if err != nil {
		l.werr = err
		return err
	}
	// A wake-up or Stop Triggered on the old poller after its Polling
	// returned went with it.
	if l.posts.Pending() {
		l.trigger(l.drainFn)
	}
	if l.stopReq.Load() {
		l.trigger(l.stopFn)
	}
	return nil
}

// Stop makes Run return after the current iteration; safe from any
// goroutine. A Stop while the loop is not running makes the next Run (or
// RunOnce) return after one iteration.
func (l *Loop) Stop() {
	if !l.stopReq.Swap(true) {
		l.trigger(l.stopFn)
	}
}

// Close stops the loop and releases its pollers, the timer source and the
// signal relay's goroutines; watched fds stay open (they are the caller's).
// Functions posted before Close run first. Called from a callback, Close
// makes Run return (nil) and the pollers are released as it does; it must
// not be called while Run executes on another goroutine. Closing again is
// a no-op.
func (l *Loop) Close() error {
	if l.closed {
		return nil
	}
	// Closed first: functions still queued run below and find the loop
	// closed for new registrations.
	l.closed = true
	l.sigs.Close()
	l.posts.Close()
	for _, rec := range l.fds {
		if rec != nil {
			for _, w := range rec.ws {
				w.stopped = true
			}
		}
	}
	l.fds = nil
	if l.running {
		// From a callback: Polling is on the stack and its poller must
		// stay open until it returns; poll releases everything then.
		l.stopReq.Store(true)
		l.trigger(l.stopFn)
		return nil
	}
	return l.release()
}

// release closes the pollers and the timer source.
func (l *Loop) release() error {
	var errs []error
	l.pmu.Lock()
	p, reg := l.poller, l.reg
	l.poller, l.reg = nil, nil
	l.pmu.Unlock()
	if p != nil {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gnet: close poller: %w", err))
		}
	}
	if reg != nil && reg != p {
		if err := reg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gnet: close poller: %w", err))
		}
	}
	if l.tsrc != nil {
		if err := l.tsrc.close(); err != nil {
			errs = append(errs, fmt.Errorf("gnet: close timer source: %w", err))
		}
	}
	return errors.Join(errs...)
}

var (
	_ loop.Loop        = (*Loop)(nil)
	_ loop.EdgeWatcher = (*Loop)(nil)
	_ loop.Limited     = (*Loop)(nil)
)
