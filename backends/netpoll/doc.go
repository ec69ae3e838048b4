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
// it owns becomes ready. How readiness reaches the loop from it differs by
// platform.
//
// On Linux the loop owns one epoll instance, made non-blocking and wrapped
// with os.NewFile, so that the runtime's netpoller watches the epoll fd
// itself (epoll instances nest). One waiter goroutine stays inside a
// single SyscallConn().Read on it for the loop's life: its function marks
// that an edge came and wakes the loop, then returns false, so the runtime
// parks it until the next edge (and its pdReady flag keeps an edge that
// arrives while the waiter is busy, because the wait is never
// re-prepared). The loop's dispatch then calls epoll_wait with a zero
// timeout and runs the callbacks; nothing ever blocks an OS thread in
// epoll_wait. Watch adds an epoll item on the caller's fd itself
// (level-triggered; EPOLLET for [Loop.WatchEdge]), Modify changes it, Stop
// deletes it before it returns; a second watcher of the same fd registers
// a duplicate, since epoll keys items by file and fd number. Each item's
// data is the watcher's slot and a generation, never the fd number, so an
// event epoll reported before a Stop can never reach a watcher that
// reuses the number. A paused watcher (Modify(0)) stays registered
// edge-triggered with nothing asked: epoll reports hang-ups whatever was
// asked, and a level-triggered item would report one on every iteration.
// epoll_wait re-queues a level-triggered item that is still ready but does
// not signal the epoll fd again, so after an iteration that ran a
// level-triggered callback (or filled the event buffer) the loop looks
// again without waiting; an fd left ready thus fires on every iteration,
// and a drained one waits for the next edge. Watch and Modify make the
// next iteration look too, so a watcher armed on a ready fd fires without
// a round trip through the runtime's poller. Iterations woken by posts or
// timers alone make no epoll_wait call.
//
// Elsewhere (kqueue on macOS and the BSDs, event ports on Solaris) Watch
// sets O_NONBLOCK on the caller's fd, duplicates it (F_DUPFD_CLOEXEC),
// wraps the duplicate with os.NewFile (which registers it with the
// netpoller, edge-triggered) and starts one waiter goroutine per armed
// direction. Each waiter stays inside a single SyscallConn().Read (or
// Write) call for the whole life of the watcher: its function polls the fd
// once (poll(2) with a zero timeout, so readiness that arrived before the
// registration is not lost), then returns false on every call, so the
// runtime parks it until the next edge. On each edge the waiter records
// the direction in a mutex-protected ready list and wakes the loop; it
// never waits for the loop, so Stop on the loop goroutine cannot deadlock
// with it. Level-triggered watchers are the edge mechanism plus poll(2):
// an edge only tells the loop to look, and the loop asks the fd (zero
// timeout) what is ready when it dispatches, and again on the next
// iteration after a callback ran. Edge-triggered watchers dispatch what
// the waiters collected without asking the fd; they may report one
// spurious edge at registration. Stop marks the watcher stopped and closes
// the duplicate: the runtime wakes the waiters with poll.ErrFileClosing,
// and the close returns only once the duplicate is deregistered.
//
// On every platform the caller's fd is never closed by the loop. Close
// stops every watcher, runs the functions posted before it, stops the
// signal relay and waits for every waiter goroutine.
//
// # Cost
//
// One readiness event costs two goroutine hand-offs before the callback
// runs: netpoller → waiter goroutine → loop goroutine (a non-blocking
// channel send and receive). A scheduler that then wakes a parked
// goroutine adds a third. Nothing blocks an OS thread: the loop parks like
// any goroutine, so the runnext starvation that thread-blocking pollers
// must break with runtime.Gosched does not arise.
//
// On Linux a watched fd costs one epoll item and a 48-byte watcher: no
// goroutine, no duplicate. Side by side on a 2-core VM (one run each,
// three repetitions, commit 8bcb8d9 with a waiter goroutine and a
// duplicate per watched fd, then the design above):
//
//	evhub bench -backend netpoll -workload pingpong-1,pingpong-64,pingpong-1000,idle-10000 -reps 3 -duration 1s -warmup 250ms -micro 0
//
//	server CPU per round trip (µs)  1 conn       64 conns     1,000 conns  bytes per idle conn (10,000)
//	hub goroutines                  42.7 → 44.2  12.4 → 11.1  16.2 → 11.5  failed → 8,203
//	reactor                         44.1 → 44.3  13.7 → 11.0  14.6 → 10.6  failed → 224
//	net (same runs)                 40.4 / 36.6  10.9 / 8.5   12.7 / 10.7  7,892 / 7,814
//
// (The idle rows failed before: a duplicate per connection doubled the
// descriptors past the bench server's limit of 20,000 at 10,000
// connections (EMFILE); at 5,000,
// the reactor's idle connection cost 3,754 B.) Elsewhere each watched fd
// costs a duplicate fd, a netpoller registration and one parked goroutine
// per armed direction (a few KiB of stack each).
// Signals arrive through [loop.SignalRelay], i.e. os/signal and a Post.
package netpoll
