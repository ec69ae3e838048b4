//go:build linux

package evio

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"golang.org/x/sys/unix"
)

// CheckInternals reports whether the layout of evio's connection was
// learned and matched (after the first connection).
func CheckInternals() error {
	internalsOnce.Do(func() {}) // for the happens-before edge
	if errInternals != nil {
		return errInternals
	}
	if layout.connType == nil {
		return errors.New("evio's connection layout was never learned")
	}
	return nil
}

// StealWakes makes every Wake of handOut lose its wake-up, as evio's race
// between its note queue and its eventfd loses some: the eventfd's count
// is read back before evio's loop polls again. It returns the undo.
func StealWakes() (undo func()) {
	afterWake = func(sv *server) {
		if sv.wfd < 0 {
			return
		}
		// evio's eventfd blocks: read it only when it holds a count.
		pfd := []unix.PollFd{{Fd: int32(sv.wfd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 {
			var b [8]byte
			_, _ = unix.Read(sv.wfd, b[:])
		}
	}
	return func() { afterWake = nil }
}

// OnSalvage makes f run when a stream whose fd evio closed at the peer's
// EOF is about to be kept open, with evio's poller and the closed number.
// Set it before the hub opens. It returns the undo.
func OnSalvage(f func(epfd, fd int)) (undo func()) {
	beforeSalvage = f
	return func() { beforeSalvage = nil }
}

// OnDataHanded makes f run for every Data event between the count of its
// bytes (no longer in flight) and its handler. It returns the undo.
func OnDataHanded(f func()) (undo func()) {
	inData = func(*stream) { f() }
	return func() { inData = nil }
}

// EpollTargets lists the descriptor numbers registered in an epoll
// instance, from its /proc fdinfo (epollTargets).
func EpollTargets(t testing.TB, epfd int) []int {
	ts, err := epollTargets(epfd)
	require.NoError(t, err)
	fds := make([]int, 0, len(ts))
	for _, tg := range ts {
		fds = append(fds, tg.fd)
	}
	return fds
}

// OnReadThenClose makes f run in the first Data event that read bytes,
// after they went out to the loop goroutine; the event then waits (at
// most 10 s) until the stream's Close was called before it decides evio's
// action. f is where the test calls Close. It returns the undo.
func OnReadThenClose(f func()) (undo func()) {
	var once bool
	afterRead = func(st *stream) {
		if once {
			return
		}
		once = true
		f()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			st.mu.Lock()
			requested := st.closeReq
			st.mu.Unlock()
			if requested {
				return
			}
		}
	}
	return func() { afterRead = nil }
}

// SkipDrainCheck keeps the kick from noticing that evio has written the
// output it holds for a stream. Set it before the hub opens, undo it
// after the hub closed.
func SkipDrainCheck() (undo func()) {
	skipDrainCheck = true
	return func() { skipDrainCheck = false }
}
