// Package gnet is the evhub loop backend on gnet v2's exported poller,
// github.com/panjf2000/gnet/v2/pkg/netpoll: epoll on Linux, kqueue on the
// BSDs and macOS. Importing the package registers it as "gnet" with
// [loop.Register]; open a loop with loop.Open("gnet") or [New]. It has
// every capability of the contract and implements [loop.EdgeWatcher].
//
// # One poller (Linux)
//
// On Linux a loop is one gnet poller and a timerfd. Watch, Modify and Stop
// go through the poller's AddRead/AddWrite/AddReadWrite, ModRead/
// ModReadWrite and Delete; the loop runs its Polling, and Post and Stop
// wake it with its Trigger. A batch therefore costs what it costs gnet's
// own engine: one epoll_wait, blocking when the loop is idle, and after
// events a non-blocking one (Polling's own rhythm). Counted on a 2-core
// x86-64 VM shared with other benchmarks, with
// `perf stat -e syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_write
// -p PID -- sleep 1.5` on the server child (evhub __serve) one second
// into its row of `evhub bench -backend gnet -workload pingpong-1
// -duration 3s -reps 1 -micro 0`, epoll_pwait per write (per round trip),
// two runs: reactor row 1.94 and 1.98, hub row 1.90 and 1.94, raw gnet's
// engine 1.73 to 1.96; with two pollers, the way this package worked on
// Linux before (commit f8ab62a), the reactor row took 2.93 and 2.94 and
// the hub row 2.75 and 2.90.
//
// Server CPU per round trip, the same bench's srv µs/rt column, ratio to
// raw gnet's in the same run, medians of eight runs of `evhub bench
// -backend gnet -workload pingpong-1,pingpong-64 -reps 3 -duration 1s
// -warmup 250ms -micro 0` interleaved with eight of f8ab62a: reactor row
// 1.05 at one connection and 0.91 at 64 (two pollers: 1.12 and 0.87), hub
// row 1.06 and 1.00 (1.08 and 1.17), cooperative-task row 1.05 and 1.10
// (1.14 and 1.07). The VM was loaded (load average 5 to 10 on 2 cores,
// raw gnet at 87 to 125 µs per round trip at one connection instead of
// about 23): single runs ranged from 0.74 to 1.41, wider than these
// differences, so the syscall counts above are the measure this design
// rests on.
//
// Polling calls back once per event and shows no batch's end, so what the
// loop does when a batch of callbacks ends — drain what they posted (with
// no Trigger), re-arm the timer source, yield — it does after each fd's
// callbacks; before Polling blocks it yields on its own. After the
// callbacks of watchers marked quiet ([loop.Quieter]: the reactor's, whose
// handlers ready no goroutine that waits for them) it does not yield, and
// leaves what they readied to that yield: at 64 connections the yield
// after each fd was 2.5% of the reactor's server CPU (CPU profile of
// `EVHUB_BENCH_CPUPROFILE=/tmp/p evhub bench -backend gnet -workload
// pingpong-64 -reps 1 -duration 5s -micro 0`), and with it skipped the
// reactor row's profile shows no yield but Polling's own. Two rules of a
// batch need care:
//
//   - a watcher stopped or modified earlier in the wait is not called: the
//     record is looked up when its event comes;
//   - an event that a wait collected for a file whose number was then
//     closed and given to a new file during the same wait's callbacks must
//     not reach the new file's watchers. A record made, during a callback,
//     for a number whose previous record went since the last point at which
//     no collected event was pending (Polling's start, its chores) is
//     quarantined: its events are ignored until a Trigger'd task releases
//     it in the next wait's chores, where an edge-triggered registration
//     is re-applied, so that the new file's readiness, if any, is reported
//     once. Level-triggered readiness is reported again anyway. A reused
//     number costs one eventfd write (the Trigger), and its first events
//     wait for the next wait's chores; a number not reused within a wait
//     costs nothing.
//
// RunOnce(false) Triggers its end before it polls, so it is one wait.
// RunOnce(true) ends after the wait that found something, but the Trigger
// it then issues runs in the chores of the next wait, after that wait's
// events: of those, a
// level-triggered fd already dispatched in this RunOnce is left for the
// next one (its readiness is reported again) and an edge is dispatched at
// once (it would not be).
//
// # Two pollers (kqueue)
//
// On kqueue the loop holds two gnet pollers. The registration one holds
// the watched fds (on kqueue, where gnet's Delete is a no-op and no call
// removes a read filter, the read filter is deleted directly on its
// kqueue) and is never Polled. The other runs: Polling, Trigger, the
// timer source and the registration poller's fd, registered
// level-triggered. When the registration poller has events, the running
// one reports it and the loop collects one batch with a non-blocking
// kevent. So a batch has exact bounds (a record made during a batch
// ignores its events), and replacing the running poller leaves every
// registration, edge state included, untouched. The price is a second
// wait per batch. The mode builds on Linux too, where the package's tests
// run the whole conformance suite in it (TestConformanceNested).
//
// The poller allows one registration per fd, so every watcher of an fd
// shares one per-fd record whose registration is the union of their
// events; each watcher gets only its own events. Level- and edge-triggered
// watchers cannot share an fd (epoll has one mode per registration):
// mixing them is an error wrapping [ErrMixedTriggers]. Dispatching
// readiness allocates nothing.
//
// # Posts, timers, signals
//
// Post uses [loop.PostQueue], whose wake-up is Poller.Trigger of the queue
// drain, issued only when the queue goes from empty to non-empty and not
// while I/O callbacks run (outside RunOnce): what they post is drained
// when they return, with no Trigger, so a task woken by readiness costs no
// eventfd write, read and extra poll. gnet's chores run the task queue
// until it is empty, so functions posted while the drain runs wait for the
// next batch (after its I/O): a function that keeps re-posting itself
// cannot starve I/O or timers. Timers are the shared [loop.TimerHeap],
// driven on Linux by one timerfd registered with the running poller and
// re-armed only when the earliest deadline moves earlier (Polling takes no
// timeout that could carry them); on the BSDs by a runtime timer that
// Triggers the poller. Signals use the shared [loop.SignalRelay].
//
// # Ending Polling
//
// Run calls Poller.Polling and stays in it until Stop, whose Trigger task
// returns gnet's ErrEngineShutdown; RunOnce makes Polling return the same
// way after one wait. Polling returns from inside its chores, before it
// clears its wake-up flag, so a later Trigger on that poller queues its
// task without writing the eventfd, and nothing would wake the next
// Polling for it. The loop repairs that by writing the poller's eventfd
// once after Polling returns (rewake): exactly the write Trigger skipped,
// so the next Polling runs what was queued and clears the flag. The
// eventfd is an unexported field of gnet's poller, read (never written) by
// reflection; a gnet release without it gets two pollers on Linux too,
// and the tests fail on the field's absence (TestFDs). With one poller the
// repair is what keeps the registrations; after a panic through Polling
// the loop repairs the same way and goes on.
//
// With two pollers (kqueue, whose poller wakes through a filter of its own
// rather than an eventfd), a poller whose Polling returned is closed and a
// fresh one takes its place; the watched fds and their edge state live in
// the registration poller and survive. Run pays this once, at Stop; a
// RunOnce each time. BenchmarkRunOnce measures the three ways
// (go test -run '^$' -bench RunOnce -benchtime 20000x -count 3
// ./backends/gnet/, on the loaded VM above): a RunOnce(false) costs 4 to
// 15 µs with one poller, 5 to 7 µs with two and reuse, 35 to 155 µs with
// two and a fresh poller each time.
//
// # Yielding
//
// After callbacks the loop yields ([loop.Batch]: one runtime.Gosched), so
// that a goroutine the callbacks readied into the runnext slot of the
// loop's P runs at once instead of waiting for sysmon to steal it while
// Polling blocks the thread in epoll_wait. With one poller the loop yields
// after each fd's callbacks, although Polling runs runtime.Gosched itself
// when a non-blocking wait finds nothing: that comes one syscall later,
// and measures slower. BenchmarkYield shows the effect (go test -run '^$' -bench Yield
// -benchtime 20000x -count 3 ./backends/gnet/, on the loaded VM above,
// ranges of three): a Post round trip takes 1.9 to 7.1 µs with the yield
// and 8.5 to 9.9 µs without; fd readiness to a woken goroutine 12.8 to 14.0
// µs and 16.5 to 18.9 µs.
// TestPingPongStalls is the regression test.
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
