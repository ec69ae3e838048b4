// Package backoff is the wait of an accept loop that ran out of file
// descriptors (EMFILE, ENFILE). Accepting again at once would fail again
// and spin; meanwhile the connection waits in the kernel's backlog until
// a descriptor is free, so the loop waits a little longer each time
// (5 ms, doubling, up to 1 s) and starts over after an accept succeeds.
// The scheduler's fd-based Accept and the evio backend (which must not
// even try an accept it cannot complete) share it.
package backoff

import (
	"errors"
	"syscall"
	"time"
)

const (
	// Min is the first delay.
	Min = 5 * time.Millisecond
	// Max bounds the delay.
	Max = time.Second
)

// Accept is the back-off state of one accept loop. The zero value starts
// at Min. It is not safe for concurrent use.
type Accept struct{ d time.Duration }

// Next returns the delay before the next attempt: Min the first time,
// then twice the previous delay, at most Max.
func (b *Accept) Next() time.Duration {
	if b.d == 0 {
		b.d = Min
	} else {
		b.d = min(2*b.d, Max)
	}
	return b.d
}

// Reset starts over at Min, after an accept succeeded.
func (b *Accept) Reset() { b.d = 0 }

// Exhausted reports whether err says that the process (EMFILE) or the
// system (ENFILE) has no file descriptor to spare: the errors to back off
// on rather than report.
func Exhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
