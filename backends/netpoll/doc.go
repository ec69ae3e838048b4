// Package netpoll is evhub's portable backend: a [loop.Loop] built on the
// Go runtime's own netpoller (epoll on Linux, kqueue on macOS and the BSDs,
// event ports on Solaris), using only the standard library and
// golang.org/x/sys. It is the default where gnet's poller does not exist
// (backends/all). Importing the package registers it as "netpoll" with
// [loop.Register]. It is tested on Linux and builds on every Unix but AIX;
// elsewhere [New] returns an error wrapping errors.ErrUnsupported.
//
// # Design
//
// The loop goroutine is whoever calls Run or RunOnce. It sleeps on a
// one-slot channel (the wake-up that [loop.PostQueue], readiness and Stop
// send to) or on one reused time.Timer set to the earliest deadline of a
// [loop.TimerHeap]. An iteration fires the due timers, runs the posted
// functions, then dispatches the readiness collected since the last one.
//
// The runtime netpoller is not an API: it only parks a goroutine until an fd
// it owns becomes ready. Watch therefore sets O_NONBLOCK on the caller's fd,
// duplicates it (F_DUPFD_CLOEXEC), wraps the duplicate with os.NewFile (which
// registers it with the netpoller, edge-triggered) and starts one waiter
// goroutine per armed direction. Each waiter stays inside a single
// SyscallConn().Read (or Write) call for the whole life of the watcher: its
// function polls the fd once (poll(2) with a zero timeout, so readiness that
// arrived before the registration is not lost), then returns false on every
// call, so the runtime parks it until the next edge — and because the wait
// is never re-prepared, the runtime's pdReady flag keeps an edge that
// arrives while the waiter is busy. On each edge the waiter records the
// direction in a mutex-protected ready list and wakes the loop; it never
// waits for the loop, so Stop on the loop goroutine cannot deadlock with it.
//
// Level-triggered watchers ([Loop.Watch]) are the edge mechanism plus
// poll(2): an edge only tells the loop to look, and the loop asks the fd
// (zero timeout) what is ready when it dispatches, so readiness that an
// earlier callback already consumed never fires. After a callback has run,
// the loop looks again on the next iteration and fires while the fd stays
// ready, so an fd that is not drained fires on every iteration and one that
// is drained waits for the next edge. Watch and Modify schedule the same
// look, so a watcher armed on an fd that is already ready fires on the next
// iteration. Edge-triggered watchers ([Loop.WatchEdge], the optional
// [loop.EdgeWatcher]) dispatch what the waiters collected without asking
// the fd: one callback per edge, with no system call and no allocation in
// steady state. They may report one spurious edge at registration (the
// initial poll and the registration's own edge can both see data that was
// already there); a spurious edge costs the owner one EAGAIN.
//
// Stop marks the watcher stopped (a callback already collected for it in the
// current iteration is dropped) and closes the duplicate: the runtime wakes
// the waiters with poll.ErrFileClosing, they exit, and the close returns
// only once the duplicate is really closed and deregistered, so a reused fd
// number can never see a stale watcher's events. The caller's fd is never
// closed by the loop. Close stops every watcher, runs the functions posted
// before it, stops the signal relay and waits for every waiter goroutine.
//
// # Cost
//
// One readiness event costs two goroutine hand-offs before the callback
// runs: netpoller → waiter goroutine (records the event: one uncontended
// mutex and a non-blocking channel send) → loop goroutine (channel receive,
// dispatch). A scheduler that then wakes a parked goroutine adds a third.
// On a 2-core x86-64 VM the whole write → callback → wake-up round
// trip measured ~7 µs edge-triggered and ~10 µs level-triggered (two
// poll(2) calls per event) (go test -run '^$' -bench 'Conformance/.*wakeup'
// ./backends/netpoll/), against ~7 µs for a goroutine woken by the
// netpoller directly (os.File.Read), the floor of any design built on it.
// Each watched fd costs a duplicate fd, a netpoller registration and one
// parked goroutine per armed direction (a few KiB of stack each), which
// makes idle connections dearer here than on backends that own an
// epoll/kqueue instance. Nothing blocks an OS thread: the loop parks like
// any goroutine, so the runnext starvation that thread-blocking pollers
// must break with runtime.Gosched does not arise.
// Signals arrive through [loop.SignalRelay], i.e. os/signal and a Post.
package netpoll
