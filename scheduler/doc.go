// Package scheduler turns a loop.Loop's readiness into ordinary blocking Go
// code: it builds net.Listener, net.Conn and net.PacketConn values whose
// Read, Write, Accept and dial block the calling goroutine until the loop
// reports the fd ready, a deadline passes, or the socket is closed. It is
// the only place in evhub that knows how to wait, and it knows nothing of
// any backend: it sees only the loop.Loop contract and two optional
// capabilities, loop.EdgeWatcher (one registration per socket, below) and
// loop.StreamServer (for loops that own their sockets, like evio: Listen
// then serves connections through the loop's own callbacks, stream.go,
// with the same errors, deadlines and Close semantics).
//
// # Two ways to run code on a hub
//
// Any goroutine may use hub sockets: a blocking call parks the goroutine.
// Hub.Go runs a function as a cooperative task (gevent's greenlet): a
// coroutine (iter.Pull) that only the hub's loop goroutine resumes, between
// loop callbacks, so the tasks of one hub never run in parallel and share
// state without locks. The wait primitive below is the same for both: a
// parked goroutine waits on a channel, a parked task switches back to the
// hub and is put on the hub's run queue when woken. A task is recognised by
// its goroutine's g pointer (8 ns; getg_*.s), and that lookup is skipped
// entirely while no task exists. Event, Queue, AsyncResult, Semaphore and
// Group work from both. A monitor (StartMonitor, EVHUB_MONITOR) reports a
// task that blocks its hub with a non-hub call, with the task's stack.
//
// # Sockets
//
// Hub sockets are the standard library's from the outside: the same error
// values (*net.OpError with Op, Net, Source and Addr; net.ErrClosed;
// os.ErrDeadlineExceeded; io.EOF; the syscall errors through
// *os.SyscallError; net's own "operation was canceled" and "i/o timeout"
// values for contexts), the same deadline semantics, Close waking every
// blocked call at once, serialised concurrent reads and writes, CloseRead
// and CloseWrite, SyscallConn, and addresses of the same concrete types.
// The conformance suite checks each of these side by side with package net.
// A connection's own type does not depend on the loop that carries it: a
// TCP connection is a *TCPConn (SetNoDelay, SetKeepAlive, SetLinger, ...)
// and a unix one a *UnixConn, whether the hub polls its fd or the loop
// owns the socket (TestConnTypes checks it on every backend).
//
// # The wait primitive
//
// Every socket has a pollDesc, modelled on internal/poll's: per direction
// (read, write) an atomic state — idle, ready (readiness seen since the
// last wait), or waiting (a goroutine is parked) — a deadline, and a
// one-slot wake channel. An operation tries its syscall first; on EAGAIN it
// consumes a "ready" left by the loop and retries, or publishes "waiting"
// and parks. The loop's callback swaps the state to "ready" and wakes the
// goroutine only if one was parked. Deadlines are runtime timers that mark
// the direction expired and wake the waiter; Close marks the fd closing,
// wakes both directions, and the last in-flight call to leave (a reference
// count, the role of internal/poll's fdMutex) removes the watcher on the
// loop goroutine and only then closes the fd — so a kernel that reuses the
// fd number can never deliver a stale watcher's events to a new socket.
//
// The one design question is how the loop learns that a goroutine waits.
// Loop methods other than Post may only be called on the loop goroutine, so
// arming a watcher from a parked goroutine costs a Post: a lock, an append
// and, when the loop sleeps in its poll, a cross-thread wake-up.
//
//   - Level-triggered loops (the contract; libev has nothing else): a wait
//     arms its direction with a Post unless it is still armed. An event
//     that finds a parked waiter wakes it and leaves the direction armed
//     for that waiter's next wait, so a connection that keeps reading
//     posts nothing; an event that finds nobody waiting disarms the
//     direction (first, then marks it ready, so a waiter that parked on
//     the armed bit meanwhile is woken, not lost), so an undrained fd that
//     nobody waits for fires once and cannot make the loop spin. Cost: a
//     Post only when a wait finds its direction disarmed.
//   - Loops with the optional loop.EdgeWatcher (netpoll, gnet): the fd is
//     registered once, edge-triggered for both directions, on its first
//     wait, and never re-armed; the callback only sets the atomic state,
//     exactly as the runtime's netpoller does. Cost: one Post per socket.
//
// Measured on a 2-core VM (go test -tags cev -run XXX
// -bench 'PingPong$' -benchtime 20000x -count 4 ./scheduler/, medians of
// one run with every row interleaved; a 64-byte round trip between two hub
// sockets in one process, so two waits per round trip):
//
//	backend   wait path                          µs/round trip   allocs
//	netpoll   edge, one registration                26.7           0
//	netpoll   level, armed until a fire finds        27.8           0
//	          nobody waiting
//	gnet      edge, one registration                27.6           0
//	gnet      level, same                           26.0           0
//	cev       level, same                           25.5           0
//	net package (reference)                         15.9           0
//
// With the first level protocol (arm by Post on every wait, disarm on
// every event) the same run order gave netpoll 28.9, gnet 34.3 (plus gnet's
// one allocation per Trigger) and cev 28.1 µs: keeping a direction armed
// while its reader keeps reading removed the Post from the steady state,
// and the two paths now cost the same within this machine's noise. In a
// server the hops above the syscalls matter less than here: the bench
// (evhub bench, bench/README.md) puts hub sockets at 0.9-1.0× the raw
// library's server CPU per round trip on gnet and evio.
//
// The edge path is used wherever the loop offers it (no Modify syscalls when
// a direction goes idle, no Post ever after the first); the level path is
// the portable one that every loop supports. Reads and writes on a ready
// socket never wait: one syscall, zero allocations (BenchmarkReadyReadWrite).
//
// On the level path a stream socket's Read that follows a short one (it
// took less than it asked for, so the socket was empty) waits for
// readiness before trying read(2): in a request-response exchange the
// speculative read would say EAGAIN every time, one syscall in two. It
// is safe there because arming looks at the socket's state at once, so
// bytes a short read left behind (a unix message carrying descriptors,
// TCP's urgent mark and injected short reads end a read early) are
// reported without anything new arriving; an edge registration would
// wait for the next arrival, so the edge path keeps the speculative read
// (TestShortReadLeavesBytes, TestDrainedReadWaitsFirst: one read per
// round trip). A 64-byte echo whose server reads 4 KiB at a time, as the
// bench's does, both ends hub sockets in one process, level path (go test
// -tags uring -run '^$' -bench EchoServer -benchtime 20000x -count 6
// ./scheduler/; medians; "before" is the same benchmark on the scheduler
// of 06ef8f1, which differs only by this, the two builds run one after
// the other on the 2-core VM): 25.9 → 24.0 µs per round trip on uring,
// 25.4 → 23.5 on netpoll, 22.8 → 21.3 on gnet.
//
// # Tasks that never freeze their hub
//
// A task runs on its hub's goroutine, so anything that blocks that
// goroutine's thread stops every task of the hub. What real programs do
// is therefore offered in a form that parks only the calling task:
//
//   - Blocking (BlockingValue) runs any function on a goroutine of its own
//     and parks the task until it returns (gevent's threadpool); the
//     task's context ends the wait at once, while the function runs to its
//     end. At most SetBlockingLimit functions (500, as net's cgo lookups)
//     run at once; the rest wait, parked, for a slot. From a goroutine it
//     simply calls the function. The monitor's report names it.
//   - Hub.Resolver's lookups, and Dial, DialContext, Listen and
//     ListenPacket with host names, run the resolver (Hub.SetResolver;
//     net.DefaultResolver by default, with its answers and errors) on a
//     goroutine when called from a task.
//   - Hub.WaitFD waits for readiness of any fd with a deadline and a
//     context; Hub.NewFile, WrapFile and Pipe give pipes, ttys and the
//     like Read, Write, deadlines and Close as *os.File has them; package
//     hubexec runs subprocesses whose Wait watches a pidfd on the loop.
//     A backend that cannot watch fds (evio) returns errors wrapping
//     errors.ErrUnsupported for these; lookups and Blocking work on all.
//
// Measured on a 2-core VM while other work loaded it
// heavily (go test -tags cev -run XXX -bench 'TimerLateness|BlockingTrip'
// -benchtime 2000x ./scheduler/, two runs, load average 12-19 and 24-26):
// how late a task's 1 ms Sleep wakes, idle and beside 1,000 tasks blocked
// in lookups that a DNS server never answers, and one trip through
// Blocking with a function that does nothing:
//
//	backend   Sleep lateness p50 / p99, µs            Blocking trip, ns
//	          idle               1,000 lookups hang   (6-7 allocs)
//	netpoll   149-158 / 9-16k    145-153 / 4-12k      2,794 / 4,617
//	gnet       95-97  / 9k        88-91  / 5-7k       2,212 / 27,748
//	cev       140-163 / 10-13k   134-140 / 8-9k       8,157 / 69,603
//
// The medians agree; the p99s are the machine's load (the idle rows are
// no better than the others), not the lookups', which wait on the
// runtime's netpoller off the hub. The trip costs a goroutine start and a
// task wake-up through the loop (a function called in place: 20-340 ns),
// microseconds on a quiet machine: worth it for anything that may block
// for longer than that. Re-measure on a quiet machine before relying on
// the p99s.
package scheduler
