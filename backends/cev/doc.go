// Package cev is the evhub loop backend on libev 4.33, through cgo.
//
// It is compiled only with the build tag cev (go build -tags cev) and needs
// cgo and libev's headers and library: on Debian or Ubuntu,
// apt-get install libev-dev. Without the tag this package is empty, so a
// machine without libev or a C compiler still builds everything else.
// With the tag but without libev the build fails in cgo with
// "fatal error: ev.h: No such file or directory": install libev-dev.
//
// Importing the package registers the backend as "cev" with loop.Register.
//
// # Design
//
// One libev loop per [Loop], made with ev_loop_new(EVFLAG_AUTO |
// EVFLAG_NOSIGMASK); never the default loop, whose SIGCHLD handler reaps
// child processes before os/exec can, and never ev_signal or ev_child,
// whose C handlers fight the Go runtime's. Signals come through
// loop.SignalRelay (os/signal → Post); child processes are watched through
// a pidfd with Watch. libev picks epoll on Linux; it honours the
// LIBEV_FLAGS environment variable, but only the epoll backend is tested.
//
// Debian's libev is built with assertions: it aborts the process on a
// negative fd and when epoll_ctl fails with EBADF or EINVAL. Watch
// therefore checks the fd (fcntl F_GETFD) and refuses the loop's own epoll
// fd, and before each poll the fds whose watchers changed are checked
// again: the watchers of an fd closed in the meantime (a caller's bug) are
// stopped and get their armed events, so that their next syscall fails
// with EBADF, instead of the process aborting.
//
//   - Watch is an ev_io per watcher. libev's epoll backend is
//     level-triggered and libev has no edge-triggered mode, so the loop
//     does not implement loop.EdgeWatcher.
//   - Timers live in the shared loop.TimerHeap; a single ev_timer is armed
//     before each poll for the earliest deadline. 100,000 timers cost no
//     cgo call each and no C memory.
//   - Post is loop.PostQueue woken by ev_async_send, called only when the
//     queue goes from empty to non-empty.
//   - The driver is Go code around ev_run(EVRUN_ONCE) (Run, RunOnce(true))
//     and ev_run(EVRUN_NOWAIT) (RunOnce(false)).
//
// No Go code runs inside ev_run. The C callbacks of the loop's own
// watchers only append (handle, revents) to a C array; after ev_run
// returns, the loop goroutine dispatches the recorded events to the Go
// callbacks in plain Go. So a C→Go callback costs nothing, a panicking
// callback unwinds through Go only (it propagates out of Run or RunOnce
// and leaves the loop usable), callbacks may resume coroutines, and Close
// may be called from a callback. Watchers are named in C memory by integer
// handles (slot and generation), never by Go pointers; an event recorded
// for a watcher stopped earlier in the same iteration is dropped by the
// generation check, so a stopped watcher's callback never runs again.
//
// The loop goroutine is not locked to its thread. After an iteration that
// ran callbacks it calls runtime.Gosched, so that goroutines those
// callbacks readied do not wait in its P's run-next slot while the thread
// sleeps in epoll_wait, and it polls twice more without blocking before it
// sleeps, since a readied goroutine often posts or writes at once (this
// halves the Post round trip; see spinPolls). SetSpin ([loop.Spinner])
// changes that number: package reactor, whose callbacks seldom wake
// goroutines, sets it to 0 and saves the polls' system calls.
//
// # C code on the same loop
//
// (*Loop).Raw returns the struct ev_loop pointer, so C code in the same
// process can start its own watchers on the loop that runs the Go ones (the
// reason gevent moved to a C loop). Such watchers must be started and
// stopped on the loop goroutine (or while the loop is not running), their
// callbacks run inside ev_run on that goroutine's thread, and they must be
// stopped before Close. The loop's userdata and invoke-pending callback
// belong to this package; C code must not call ev_break, ev_run,
// ev_set_userdata, ev_set_invoke_pending_cb or ev_loop_destroy on it, nor
// ev_signal or ev_child.
package cev
