package loop

import (
	"errors"
	"fmt"
	"sort"
)

// Capability names a part of the contract that a backend may lack.
type Capability string

// The capabilities a backend can declare unsupported through [Limited].
const (
	// CapWatch is Loop.Watch on an arbitrary fd. Without it the scheduler
	// cannot build sockets on fds it creates itself (Dial, ListenPacket,
	// fd-based Listen).
	CapWatch Capability = "watch"
	// CapDial is outbound connections through the hub.
	CapDial Capability = "dial"
	// CapPacket is datagram sockets (ListenPacket).
	CapPacket Capability = "packet"
	// CapUnixUnreadReset is net's reset of a unix stream connection
	// closed with bytes the application never read (the peer's Read
	// fails with ECONNRESET). The kernel resets only for bytes it still
	// holds, and AF_UNIX has no SO_LINGER: a loop that reads ahead of the
	// application lacks it (its peer reads io.EOF).
	CapUnixUnreadReset Capability = "unix-unread-reset"
)

// Limited is implemented by loops that lack parts of the contract. The
// returned map names each missing capability with the reason; a backend
// returns the same map every time. The conformance suite reports the cases
// those capabilities rule out as "n/a" with the reason, and fails if such
// a case passes anyway.
type Limited interface {
	Unsupported() map[Capability]string
}

// UnsupportedOf returns the capabilities l declares missing (nil if none).
func UnsupportedOf(l any) map[Capability]string {
	if lim, ok := l.(Limited); ok {
		return lim.Unsupported()
	}
	return nil
}

// Supports reports whether l has capability c.
func Supports(l any, c Capability) bool {
	_, missing := UnsupportedOf(l)[c]
	return !missing
}

// UnsupportedError is the error a backend returns for a capability it
// lacks. It wraps errors.ErrUnsupported.
type UnsupportedError struct {
	Backend    string
	Capability Capability
	Reason     string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s: %s unsupported: %s", e.Backend, e.Capability, e.Reason)
}

// Unwrap returns errors.ErrUnsupported.
func (e *UnsupportedError) Unwrap() error { return errors.ErrUnsupported }

// Unsupported returns the error for capability c of loop l, with the
// reason l declares (or a generic one).
func Unsupported(l Loop, c Capability) error {
	reason := UnsupportedOf(l)[c]
	if reason == "" {
		reason = "not implemented by this backend"
	}
	return &UnsupportedError{Backend: l.Name(), Capability: c, Reason: reason}
}

// SortedCapabilities returns the keys of m in order.
func SortedCapabilities(m map[Capability]string) []Capability {
	out := make([]Capability, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
