// Package gnet is the evhub loop backend on gnet v2's exported poller,
// github.com/panjf2000/gnet/v2/pkg/netpoll: epoll on Linux, kqueue on the
// BSDs and macOS. Importing the package registers it as "gnet" with
// [loop.Register]; open a loop with loop.Open("gnet") or [New]. It has
// every capability of the contract and implements [loop.EdgeWatcher].
//
// # Two pollers
//
// A loop holds two gnet pollers. The inner one is the registration set:
// Watch, Modify and Stop go through its AddRead/AddWrite/AddReadWrite,
// ModRead/ModReadWrite and Delete (on kqueue, where gnet's Delete is a
// no-op and no call removes a read filter, the read filter is deleted
// directly on the inner kqueue). It is never Polled. The outer one runs:
// Polling, Trigger, the timerfd, and the inner poller's fd, registered
// level-triggered. When the inner poller has events, the outer reports it
// and the loop collects one batch from it with a non-blocking
// epoll_wait/kevent. So:
//
//   - a batch has exact bounds: a watcher stopped or modified earlier in
//     the batch is not called, a record made during the batch ignores the
//     batch's events for its fd number (they belong to the file that had
//     the number before), and RunOnce dispatches exactly one batch;
//   - the outer poller holds only level-triggered fds, so ending Polling
//     never loses an event, and replacing the outer poller leaves every
//     registration, edge state included, untouched in the inner one.
//
// The poller allows one registration per fd, so every watcher of an fd
// shares one per-fd record whose registration is the union of their
// events; each watcher gets only its own events. Level- and edge-triggered
// watchers cannot share an fd (epoll has one mode per registration):
// mixing them is an error wrapping [ErrMixedTriggers]. Dispatching a batch
// allocates nothing.
//
// # Posts, timers, signals
//
// Post uses [loop.PostQueue], whose wake-up is Poller.Trigger of the queue
// drain, issued only when the queue goes from empty to non-empty and not
// while a batch of I/O callbacks runs (outside RunOnce): what is posted
// during a batch is drained when the batch ends, with no Trigger, so a task
// woken by readiness costs no eventfd write, read and extra poll. gnet's
// chores run the task queue until it is empty, so functions posted while
// the drain runs wait for the next batch (after its I/O): a function that
// keeps re-posting itself cannot starve I/O or timers. Timers are the
// shared [loop.TimerHeap], driven on Linux by one timerfd registered with
// the outer poller and re-armed only when the earliest deadline moves
// earlier; on the BSDs by a runtime timer that Triggers the poller.
// Signals use the shared [loop.SignalRelay].
//
// # Ending Polling
//
// Run calls Poller.Polling and stays in it until Stop, whose Trigger task
// returns gnet's ErrEngineShutdown; RunOnce makes Polling return the same
// way after one iteration. A poller whose Polling has returned is never
// polled again: it is closed and a fresh outer poller takes its place,
// because restarting the old one can lose Trigger wake-ups (below). Only the
// inner poller's fd and the timer source live on the outer poller, so the
// watched fds and their edge state survive the swap. Run pays this once,
// at Stop; a RunOnce pays it each time: about 16 µs, plus ~0.11 µs per
// watched fd for the kernel's nested-epoll check, on a 2-core x86-64 VM
// (go test -run '^$' -bench RunOnce ./backends/gnet/).
//
// Why the old poller loses wake-ups: Polling returns from inside its
// chores, before it clears its wake-up flag, so a later Trigger queues its
// task without writing the eventfd. Writing that eventfd once after Polling
// returns would repair it and make RunOnce(false) cost about 1.7 µs; the
// loop keeps that path (Loop.reuse, measured by BenchmarkRunOnce and run
// through the whole suite by its tests) but leaves it off, because it
// depends on an unexported field of gnet's poller, which a gnet release
// may change without notice; a fresh poller depends on nothing private.
//
// # Yielding
//
// After a batch of callbacks the loop yields ([loop.Batch]: one
// runtime.Gosched), so that a goroutine the callbacks readied into the
// runnext slot of the loop's P runs at once instead of waiting for sysmon
// to steal it while Polling blocks the thread in epoll_wait.
// BenchmarkYield shows the effect (medians of 6 on a 2-core x86-64 VM;
// go test -run '^$' -bench Yield -count 6 ./backends/gnet/): a Post round
// trip takes 0.9 µs with it and 6.7 µs without; fd readiness to a woken
// goroutine 9.6 µs and 13.1 µs; one readiness waking 8 goroutines 12.7 µs
// and 23.5 µs. TestPingPongStalls is the regression test.
//
// The package never builds gnet's poll_opt variant. On a platform gnet's
// poller does not support, the package still builds and registers, and
// [New] returns an error wrapping errors.ErrUnsupported.
package gnet

import (
	"errors"

	"github.com/evhub/evhub/loop"
)

// Name is the backend's registered name.
const Name = "gnet"

// ErrMixedTriggers is wrapped by the error of a Watch or WatchEdge on an
// fd that already has watchers of the other trigger mode.
var ErrMixedTriggers = errors.New("level- and edge-triggered watchers cannot share an fd")

func init() {
	loop.Register(Name, func() (loop.Loop, error) {
		l, err := New()
		if err != nil {
			return nil, err
		}
		return l, nil
	})
}
