//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"errors"
	"fmt"
	"os"

	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/loop"
)

// Watch arms a level-triggered watcher for ev on fd. Several watchers may
// share an fd; they must all be level-triggered.
func (l *Loop) Watch(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return l.watch("watch", fd, ev, cb, false)
}

// WatchEdge arms an edge-triggered watcher for ev on fd: cb runs once each
// time fd becomes ready in a direction of ev. Several watchers may share
// an fd; they must all be edge-triggered. It implements [loop.EdgeWatcher].
func (l *Loop) WatchEdge(fd int, ev loop.Events, cb func(loop.Events)) (loop.IOWatcher, error) {
	return l.watch("watch edge", fd, ev, cb, true)
}

func (l *Loop) watch(op string, fd int, ev loop.Events, cb func(loop.Events), edge bool) (loop.IOWatcher, error) {
	switch {
	case l.closed:
		return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, loop.ErrClosed)
	case fd < 0:
		return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, os.NewSyscallError(ctlName, unix.EBADF))
	case ev == 0 || ev&^(loop.Readable|loop.Writable) != 0:
		return nil, fmt.Errorf("gnet: %s fd %d: events %#x: %w", op, fd, uint8(ev), os.ErrInvalid)
	case cb == nil:
		return nil, fmt.Errorf("gnet: %s fd %d: nil callback: %w", op, fd, os.ErrInvalid)
	}
	w := &ioWatcher{l: l, ev: ev, cb: cb}
	var rec *fdRec
	if fd < len(l.fds) {
		rec = l.fds[fd]
	}
	if rec == nil {
		rec = &fdRec{pa: netpoll.PollAttachment{FD: fd}, edge: edge, born: l.batch}
		// Registering first: an invalid fd fails here, before the table
		// grows for it.
		if err := applyInterest(l, rec, ev); err != nil {
			return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, err)
		}
		if fd >= len(l.fds) {
			n := max(2*len(l.fds), fd+1, 64)
			fds := make([]*fdRec, n)
			copy(fds, l.fds)
			l.fds = fds
			if !l.nested {
				gone := make([]uint64, n)
				copy(gone, l.gone)
				l.gone = gone
			}
		}
		rec.ws = []*ioWatcher{w}
		l.fds[fd] = rec
		if l.suspect(fd) {
			l.quarantine(rec)
		}
	} else {
		if rec.edge != edge {
			mode := "level"
			if rec.edge {
				mode = "edge"
			}
			return nil, fmt.Errorf("gnet: %s fd %d: fd already has %s-triggered watchers: %w", op, fd, mode, ErrMixedTriggers)
		}
		if err := applyInterest(l, rec, rec.want()|ev); err != nil {
			return nil, fmt.Errorf("gnet: %s fd %d: %w", op, fd, err)
		}
		ws := make([]*ioWatcher, len(rec.ws), len(rec.ws)+1)
		copy(ws, rec.ws)
		rec.ws = append(ws, w)
	}
	w.rec = rec
	return w, nil
}

// want is the union of the events of rec's watchers.
func (rec *fdRec) want() loop.Events {
	var ev loop.Events
	for _, w := range rec.ws {
		ev |= w.ev
	}
	return ev
}

// Events reports the armed events (0 once stopped).
func (w *ioWatcher) Events() loop.Events {
	if w.stopped {
		return 0
	}
	return w.ev
}

// Quiet implements [loop.Quieter]: after this watcher's callbacks the loop
// does not yield (gnet's Polling still yields before it blocks).
func (w *ioWatcher) Quiet() { w.quiet = true }

// Modify changes the armed events; 0 pauses the watcher.
func (w *ioWatcher) Modify(ev loop.Events) error {
	fd := w.rec.pa.FD
	switch {
	case w.l.closed:
		return fmt.Errorf("gnet: modify fd %d: %w", fd, loop.ErrClosed)
	case w.stopped:
		return fmt.Errorf("gnet: modify fd %d: watcher stopped: %w", fd, os.ErrClosed)
	case ev&^(loop.Readable|loop.Writable) != 0:
		return fmt.Errorf("gnet: modify fd %d: events %#x: %w", fd, uint8(ev), os.ErrInvalid)
	case w.ev == ev:
		return nil
	}
	old := w.ev
	w.ev = ev
	if err := applyInterest(w.l, w.rec, w.rec.want()); err != nil {
		w.ev = old
		return fmt.Errorf("gnet: modify fd %d: %w", fd, err)
	}
	return nil
}

// Stop cancels the watcher: its callback never runs again, even for an
// event already collected in the current batch. Stop is idempotent.
func (w *ioWatcher) Stop() error {
	if w.stopped {
		return nil
	}
	w.stopped = true
	l, rec := w.l, w.rec
	if l.closed {
		return nil
	}
	ws := make([]*ioWatcher, 0, len(rec.ws))
	for _, o := range rec.ws {
		if o != w {
			ws = append(ws, o)
		}
	}
	rec.ws = ws
	fd := rec.pa.FD
	err := applyInterest(l, rec, rec.want())
	if len(ws) == 0 {
		l.forget(fd)
		if err != nil && (errors.Is(err, unix.EBADF) || errors.Is(err, unix.ENOENT)) {
			// The fd was closed before its watcher was stopped; the
			// kernel dropped the registration with it.
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("gnet: stop fd %d: %w", fd, err)
	}
	return nil
}
