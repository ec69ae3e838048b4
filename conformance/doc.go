// Package conformance is the test suite every evhub loop must pass, usable
// by anyone who writes a loop, in the manner of testing/fstest.TestFS and
// golang.org/x/net/nettest.TestConn: it checks a loop only through the
// public loop.Loop interface (and the optional interfaces it implements).
//
// A third-party backend calls it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		conformance.TestLoop(t, func() (loop.Loop, error) { return mybackend.New() })
//	}
//
//	func BenchmarkConformance(b *testing.B) {
//		conformance.BenchmarkLoop(b, func() (loop.Loop, error) { return mybackend.New() })
//	}
//
// open is called once per case and must return a new, not yet running
// loop; the suite closes it. Cases are subtests named "Area/Case" (areas:
// run, post, watch, edge, timer, signal, close), so one rule can be run alone
// with -run 'TestConformance/watch/LevelTriggered'. Every wait is bounded,
// so a broken loop fails instead of hanging. Run the suite under -race: the
// serial-callback rule is checked with deliberately unsynchronised state.
//
// Capabilities: a case ruled out by a capability the loop declares missing
// through loop.Limited still performs the operation, requires an error
// wrapping errors.ErrUnsupported (so a case that starts working fails
// instead of being skipped silently), and is then skipped with a message
// that starts with "n/a: ". The edge area is skipped the same way ("n/a: no
// edge-triggered capability") for a loop that does not implement
// loop.EdgeWatcher, an optional interface rather than a capability. The
// suite makes no other skips, except for platform facts it names (the open
// file count is read from /proc/self/fd, which exists on Linux only).
//
// Signal cases send SIGUSR1 and SIGUSR2 to the test process; they keep the
// signals notified on a channel of their own while they run, so a loop that
// drops a signal cannot kill the test binary.
package conformance
