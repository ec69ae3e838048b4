package conformance

import (
	"errors"
	"testing"

	"github.com/evhub/evhub/loop"
)

// requireUnsupported implements the suite's "n/a" protocol for capability
// c of l (a loop.Loop, or anything else that may implement loop.Limited).
//
// If l has c, it returns false and the case goes on. If l declares c
// unsupported, it calls probe — the operation the case is about — requires
// that its error wraps errors.ErrUnsupported (so a case that starts working
// fails instead of being skipped), and skips the test with
// "n/a: <capability>: <reason>"; it does not return then. Use it as
//
//	requireUnsupported(t, l, loop.CapWatch, func() error {
//		_, err := l.Watch(fd, loop.Readable, func(loop.Events) {})
//		return err
//	})
//
// at the top of a case, before doing anything the capability rules out.
func requireUnsupported(t testing.TB, l any, c loop.Capability, probe func() error) bool {
	t.Helper()
	reason, missing := loop.UnsupportedOf(l)[c]
	if !missing {
		return false
	}
	err := probe()
	if err == nil {
		t.Fatalf("capability %q is declared unsupported (%s), but the operation succeeded: declare only what is really missing", c, reason)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("capability %q is declared unsupported (%s), but the operation failed with %v, which does not wrap errors.ErrUnsupported", c, reason, err)
	}
	t.Skipf("n/a: %s: %s", c, reason)
	return true
}
