//go:build linux

package evio

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"
)

// The kick connection: how other goroutines run code on the evio
// goroutine. evio's own Wake can lose its wake-up; a byte in a socket
// that evio polls (level-triggered) cannot be missed.

// connectKick connects our end of the kick connection and waits until
// evio has opened it; the socket's path is then removed, so nobody else
// can connect to it.
func (sv *server) connectKick() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sv.kickPath}); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("evio: kick connection: %w", os.NewSyscallError("connect", err))
	}
	sv.kickMu.Lock()
	sv.kickFD = fd
	sv.kickMu.Unlock()
	select {
	case <-sv.ready:
	case <-sv.done:
		return fmt.Errorf("evio: server stopped before its kick connection opened: %v", sv.serveErr)
	case <-time.After(shutdownWait):
		return errors.New("evio: kick connection not opened within 10s")
	}
	_ = os.RemoveAll(sv.kickDir)
	return nil
}

// kick makes the evio goroutine run onKick soon. It writes to a socket
// that evio polls (level-triggered): unlike evio's Wake, whose eventfd
// can be drained after its note was collected, a byte in a socket cannot
// be missed. Safe from any goroutine; kicks coalesce until onKick runs.
func (sv *server) kick() {
	if sv.kickPending.Swap(true) {
		return
	}
	sv.kickMu.RLock()
	if sv.kickFD >= 0 {
		// EAGAIN means bytes are already waiting: the kick is pending.
		_, _ = unix.Write(sv.kickFD, []byte{0})
	}
	sv.kickMu.RUnlock()
}

// exec runs fn on the evio goroutine soon, in order with other execs.
func (sv *server) exec(fn func()) {
	sv.cmdMu.Lock()
	sv.cmds = append(sv.cmds, fn)
	sv.cmdMu.Unlock()
	sv.kick()
}

// applyLater has the evio goroutine set the stream's epoll interest
// (applyMask) soon, in the next onKick.
func (sv *server) applyLater(st *stream) {
	sv.cmdMu.Lock()
	sv.masks = append(sv.masks, st)
	sv.cmdMu.Unlock()
	sv.kick()
}

// sync waits until the evio goroutine has handled the events of its
// current iteration (or the server has stopped). Not on the evio
// goroutine.
func (sv *server) sync() { sv.run(func() {}) }

// run runs fn on the evio goroutine and waits until it has run (or the
// server has stopped). Not on the evio goroutine.
func (sv *server) run(fn func()) {
	done := make(chan struct{})
	sv.exec(func() {
		fn()
		close(done)
	})
	select {
	case <-done:
	case <-sv.done:
	}
}

// onKick runs on the evio goroutine when the kick connection has bytes:
// the commands of other goroutines, new streams, drain checks, masks.
func (sv *server) onKick() ([]byte, evio.Action) {
	sv.kickPending.Store(false) // a later kick writes a new byte
	sv.cmdMu.Lock()
	cmds, masks := sv.cmds, sv.masks
	sv.cmds, sv.masks = sv.cmdsSpare[:0], sv.masksSpare[:0]
	sv.cmdMu.Unlock()
	for i, fn := range cmds {
		cmds[i] = nil
		fn()
	}
	// A mask is the stream's current state, whatever came in between.
	for i, st := range masks {
		masks[i] = nil
		sv.applyMask(st)
	}
	if len(cmds) > 0 {
		sv.batch.Ran()
	}
	sv.cmdMu.Lock()
	sv.cmdsSpare, sv.masksSpare = cmds[:0], masks[:0]
	sv.cmdMu.Unlock()

	for i, st := range sv.opening {
		sv.opening[i] = nil
		if st.openPosted || (st.evioGone && !st.detached) {
			continue // closed already, and announced then
		}
		if sv.lnClosed {
			if st.detached {
				delete(sv.early, st) // never announced: nobody to tell
				_ = st.close(false)
			} else {
				st.requestClose()
			}
			continue
		}
		if !st.evioGone {
			sv.applyMask(st)
		}
		sv.announce(st)
	}
	sv.opening = sv.opening[:0]

	if sv.checkNeeded && !skipDrainCheck {
		sv.checkNeeded = false
		for st := range sv.holders {
			sv.checkDrained(st)
		}
	}
	for st := range sv.dirty {
		delete(sv.dirty, st)
		if st.paused() {
			sv.applyMask(st)
		}
	}
	return nil, sv.idleAction()
}

// skipDrainCheck, set only by tests, keeps the kick from checking the
// streams whose output evio holds.
var skipDrainCheck bool

// checkDrained tells st that evio has written the output it held for it,
// if so. Evio goroutine.
func (sv *server) checkDrained(st *stream) {
	if _, held := sv.holders[st]; held && outLen(st.c) == 0 {
		delete(sv.holders, st)
		st.drained()
		sv.dirty[st] = struct{}{} // evio re-armed reading when it drained
	}
}
