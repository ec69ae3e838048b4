// Package uring is the evhub loop backend on Linux's io_uring, in pure Go:
// io_uring_setup and io_uring_enter through golang.org/x/sys/unix, the
// submission and completion rings mapped and driven by this package, no
// cgo. Importing it registers the backend as "uring" with loop.Register;
// open a loop with loop.Open("uring") or New. It has every capability of
// the contract (loop.Limited reports none).
//
// The backend is compiled only on Linux with the build tag uring (go build
// -tags uring); it needs Linux 5.13 (multishot poll; 5.11 for the wait's
// timeout). Elsewhere, and without the tag, the package still builds and
// registers, and New returns an error wrapping errors.ErrUnsupported; so
// does it where io_uring cannot run, naming the cause: a kernel without
// io_uring (ENOSYS) or too old for a feature the loop needs, a seccomp
// profile that refuses io_uring_setup (EPERM: the default profile of
// Docker and of most container runtimes), the kernel.io_uring_disabled
// sysctl (Linux 6.6).
//
// # Pure Go
//
// A loop writes requests into the mapped SQ and reads completions from the
// mapped CQ itself; the only calls into the kernel are io_uring_enter,
// and with cgo over liburing each get-SQE, prepare and submit would be a
// Go→C call (26 ns each on these machines) on top. The ring costs the same
// in Go as in C (median of 3, 2-core VM under load; go test -tags uring
// -run '^$' -bench Submit ./backends/uring/ ./backends/uring/internal/cnop/,
// the second package being the same loop in C on liburing 2.3):
//
//	NOP requests per io_uring_enter     pure Go      C (liburing)
//	1                                   6.5 µs       7.7 µs
//	64                                  431 ns       853 ns   (per request)
//
// Another pair of runs gave 277-430 ns (Go) and 158-477 ns (C) per request
// at 64: equal within this machine's noise. The syscall dominates; the Go
// side adds nothing measurable, keeps
// CGO_ENABLED=0 builds working, and runs every callback in plain Go (a
// callback may resume a coroutine, which cooperative tasks rely on).
//
// # Design
//
//   - One ring per loop (SQ 256, CQ 4,096 entries, IORING_FEAT_NODROP) and
//     one eventfd: two fds, two mappings, no goroutine but the signal
//     relay's. Never SQPOLL (a kernel thread per ring that spins: it burned
//     CPU and broke things in libuv). No IORING_SETUP_SINGLE_ISSUER, and
//     so no DEFER_TASKRUN, which needs it: the kernel binds such a ring to
//     the thread that created it and refuses io_uring_enter from any other
//     with EEXIST (TestSingleIssuerRefusesOtherThreads), and the loop
//     goroutine is never locked to a thread (a locked loop goroutine paid
//     23-94 µs per round trip here, against 0.4 µs unlocked), so it moves
//     between threads. Nor for the reactor, whose callbacks seldom wait
//     for a goroutine: commit cea3bdc ran each reactor loop on a locked
//     thread with a SINGLE_ISSUER|DEFER_TASKRUN ring, multishot receives
//     and no yield (loop.ThreadRunner), and the commit after it took it
//     out again.
//     Its bench (go build -tags cev,uring -o /tmp/evhub-B ./cmd/evhub at
//     cea3bdc and -o /tmp/evhub-A at 7667225, then twice each, alternately,
//     A then B: /tmp/evhub-A bench -backend uring -workload
//     pingpong-1,pingpong-64,pingpong-1000 -reps 3 -duration 1s -warmup
//     250ms -micro 0): reactor-uring's server CPU per round trip at 1 / 64
//     / 1,000 connections, bound 46.5 / 7.1 / 9.3 and 42.9 / 7.0 / 10.0
//     µs, unbound 29.3 / 6.9 / 9.7 and 33.4 / 7.6 / 8.7 µs (raw liburing
//     in the same runs 26.8-28.2 / 6.1-7.2 / 7.5-8.3). Locking the thread
//     cost that at one connection with or without the rest (one run each:
//     the bound ring with one-shot receives 49.4 µs, the usual ring on a
//     locked thread 52.2 µs): the loop blocks in io_uring_enter once
//     per round trip there, and a locked thread that blocks in a system
//     call is, presumably, dearer for the runtime to hand its P back to
//     (not profiled). With many connections the two are level within this
//     machine's noise, so nothing pays for the loss.
//   - IORING_SETUP_COOP_TASKRUN (with TASKRUN_FLAG; Linux 5.19, and
//     without both on older kernels). A poll's wake-up runs as task work
//     of the thread that submitted the request. By default the kernel
//     forces it at once: a reschedule IPI to that thread if it is running.
//     With many busy connections the loop's thread is running whenever a
//     peer's write wakes a poll, so that was one IPI, and one interrupted
//     read or write, per message: hub sockets took 1.5× the CPU per round
//     trip of the same code on libev (evhub-cev) at 64 connections, and
//     0.95× with COOP_TASKRUN (see Figures). Cooperative task running
//     only sets a flag: the work runs at the thread's next kernel entry or
//     exit (every read and write of a busy loop, at the latest its next
//     timer tick), and a thread that sleeps interruptibly (in
//     io_uring_enter, a futex, epoll_pwait) is still woken at once, so no
//     completion waits on a thread asleep elsewhere in the runtime.
//     IORING_SQ_TASKRUN tells the loop that such work waits; an iteration
//     that sees it enters the kernel even with nothing to submit.
//   - Watch (level-triggered) is a one-shot IORING_OP_POLL_ADD, submitted
//     again with the next iteration's io_uring_enter after each
//     completion. Arming a poll checks readiness at once, so a ready fd
//     completes on every iteration until drained — level semantics at no
//     extra syscall (the request rides the enter the iteration makes
//     anyway). IORING_POLL_ADD_LEVEL cannot serve: this 6.18 kernel refuses
//     it with EINVAL. Each watcher has its own request, so several
//     watchers share an fd with no per-fd record.
//   - Every request's user_data carries a kind, the watcher's slot and the
//     watcher's generation. Stop and Modify change the generation, so a
//     completion already in the CQ, or in the batch being dispatched, is
//     dropped: after Stop returns the callback never runs. They then
//     cancel the request with IORING_OP_ASYNC_CANCEL, not POLL_REMOVE: a
//     removal that finds the request being woken at that moment fails with
//     EALREADY and leaves it armed. A pending poll holds a reference to the
//     fd's file, so a closed fd whose poll was not cancelled keeps its
//     socket open (the peer never sees the FIN, a closed listener still
//     takes connections: both found by the suite). The reference goes
//     only when the request completes, and its completion runs as task
//     work on the thread that submitted it, which after the loop
//     goroutine moved is another one (the kernel wakes it). Stop therefore
//     submits its cancellation at once (one io_uring_enter, what
//     epoll_ctl would cost) and waits until the final completions of the
//     watcher's requests still in flight, those Modify replaced too
//     (counted per watcher), are in the CQ; the fuzzer found a closed
//     unixgram socket still taking datagrams, and a closed stream whose
//     peer could still write, without that wait. Modify's cancellations
//     go out with the next enter.
//   - A request the kernel ends on its own (a multishot one on CQ
//     overflow, any one cancelled because the thread that submitted it
//     exited) is submitted again; an fd found closed (a caller's bug) gets
//     its armed events once, so that its next syscall reports EBADF.
//   - Timers are the shared loop.TimerHeap; io_uring_enter waits with the
//     earliest deadline as its timeout (IORING_ENTER_EXT_ARG, a relative
//     timespec): no timer costs a request.
//   - Post is the shared loop.PostQueue. A poster writes the eventfd only
//     while the loop sleeps in io_uring_enter or is about to (a flag and
//     the queue, ordered as in Dekker's protocol), so a busy loop costs
//     posters no syscall. A one-shot IORING_OP_READ on the eventfd wakes
//     the loop and resets the counter in the kernel; it is submitted again
//     before each sleep from the thread that sleeps, so its completion runs
//     there. Close cancels it and waits for its completion before the
//     buffer it reads into goes.
//   - Signals come through the shared loop.SignalRelay (os/signal → Post).
//   - After an iteration that ran callbacks the loop calls runtime.Gosched,
//     so that the goroutines they readied run before its thread sleeps, and
//     looks at the CQ and the posts twice more (each after a Gosched)
//     before it sleeps: a look at the CQ costs no syscall. That took a Post
//     round trip from 1.9-5.7 µs to 0.75-1.3 µs (go test -tags uring -run
//     '^$' -bench 'Conformance/post' ./backends/uring/).
//
// # Edge-triggered watches: built, measured, not offered
//
// A multishot poll (IORING_POLL_ADD_MULTI) is an edge-triggered watch that
// never needs re-arming, which is what loop.EdgeWatcher is for. The loop
// has one (watchEdge, run through the whole loop suite, edge area
// included, by TestConformanceMultishot) but does not offer it: the kernel
// runs a poll's wake-ups as task work of the thread that submitted the
// request, and a multishot request is submitted once, from whichever
// thread the loop goroutine was on then. When the goroutine has moved,
// each readiness wakes that other thread first, which then wakes the
// loop's: two wake-ups instead of one. A one-shot request goes out again
// from the thread about to wait for it. Scheduler round trips between two
// hub sockets (64 bytes; go test -tags uring -run '^$' -bench PingPong
// -benchtime 5000x -count 2 ./backends/uring/, three such runs, 2-core VM
// under load): one-shot level watches 27.5-29.0 µs (median 28.3),
// multishot 26.6-54.2 µs (median 36.6).
//
// # Memory per watch
//
// A watcher is 32 bytes (a size class of Go's allocator: a flags byte,
// 32-bit fd, slot and generation) and its slot in the loop's table a
// pointer; the kernel's request is kernel memory, outside the process's
// RSS. Completions are copied out of the CQ 256 at a time (4 KiB), so the
// dispatch queue does not grow with the number of connections.
// BenchmarkIdleWatch (go test -tags uring -run '^$' -bench IdleWatch
// -benchtime 5x ./backends/uring/) measures 48.4 B of Go heap per armed,
// idle watch at 1,000 watches: 32 for the watcher, 8 for its slot, 8 for
// its share of the queue of watches to re-arm. Everything else the
// reactor holds per idle connection is the reactor's.
//
// # Completion I/O (loop.Completer)
//
// Recv and Send (compio.go) let the kernel do a stream socket's I/O: a
// receive lands in a buffer of one of two provided-buffer rings shared by
// the loop's sockets (up to 128 × 512 B and 128 × 16 KiB, mapped on the
// first Recv; a socket holds no buffer while nothing arrives, and takes
// large buffers only while its receives fill small ones), a send is an
// IORING_OP_SEND with
// MSG_WAITALL. A receive is one-shot, re-armed with the next enter, for
// the same reason as the watches. Stopping a receive loses no byte:
// StopRecv cancels the request, waits for its last completion as a
// watcher's Stop does, and gives the receiver whatever the kernel had
// received for it by then (TestCompletionStopLosesNothing), so a caller
// can pause or give the socket away. A receive is named by its fd, as in the kernel: the
// loop keeps 6 bytes per fd number (its receiver's id among the loop's
// distinct Receivers, the generation of its request, and which ring its
// receives take from) in a table of fixed blocks indexed by fd, as libev
// keeps its watchers per fd, so a receiving socket allocates nothing of
// its own, and a caller that gives its sockets one Receiver (the reactor
// gives one per loop, and finds the connection by the fd each callback
// names) allocates nothing either (a watch: 48 B; a receive was a 32-byte
// op, its 8-byte slot and the caller's 16-byte closure, then a 24-byte
// entry holding the receiver itself). Sends have ops of their own, reused,
// and a message allocates nothing. BenchmarkEcho compares an echo server
// on the loop in both modes, readiness (Watch, then read and write) and
// completion, with clients on package net in the same process, as the
// process's CPU time per round trip, clients included (go test -tags
// uring -run '^$' -bench Echo -benchtime 30000x -count 3
// ./backends/uring/; medians of 3, 2-core VM at load average 14):
//
//	conns  message   readiness   completion   multishot receive
//	1      64 B      35.4 µs     38.3 µs      32.3 µs
//	1      16 KiB    31.4 µs     33.9 µs      33.5 µs
//	64     64 B      22.9 µs     18.6 µs      24.1 µs
//	64     16 KiB    30.8 µs     29.3 µs      31.4 µs
//
// Completions save the read and write syscalls, which pays where one
// enter carries many of them: with 64 busy connections the process took
// 0.81× the CPU per round trip (more on the server's side alone, the
// clients' share being the same in both columns); with one connection,
// or large messages cut into 16 KiB buffers, the two cost the same
// within this machine's noise. The reactor uses the capability by
// default; the scheduler does not. In the bench (go build -tags cev,uring
// -o /tmp/evhub ./cmd/evhub; /tmp/evhub bench -backend cev,uring
// -workload pingpong-1,pingpong-64,pingpong-1000,idle-5000 -reps 3
// -duration 1s -warmup 250ms -micro 0; three runs of each build,
// alternately, 2-core VM at load average 5-11) the reactor's server CPU
// per round trip on this loop, divided by the same reactor's on libev in
// the same run, went from 0.97-1.23 / 0.88-1.27 / 0.91-1.16 at 1 / 64 /
// 1,000 connections with readiness to 0.96-1.12 / 0.70-0.96 / 0.64-0.83
// with completion, and its RSS per idle connection at 5,000 from 206-216
// B to 333-401 B (the receive's op, and the touched pages of the provided
// buffers, about 0.5 MiB per loop while all 128 were in the ring from the
// start; 218-219 B since the ring grows on demand, compio.go, 197-198
// B since the slot tables grow by blocks, 163 B since a receive is an
// entry of the table by fd, 143 B since the reactor's Conn is smaller on
// this loop, 120 B since small receives take small buffers, 95 B since
// the reactor gives the loop one Receiver and the loop keeps its id per
// fd); package reactor's documentation has every figure.
//
// # Why the scheduler does not use completion I/O
//
// A goroutine blocked in Read has a buffer of its own, so the loop could
// have the kernel receive into it (IORING_OP_RECV into the reader's
// buffer, no provided buffer) instead of reporting readiness and leaving
// the read(2) to the goroutine: one system call fewer per wait, and a
// system call costs about 1 µs on these VMs (getppid 962-993 ns, a
// read(2) that says EAGAIN 1.41-1.42 µs: go test -tags uring -run '^$'
// -bench Syscall -count 3 ./backends/uring/). Commit
// 610a2fa built that (loop.BufferReceiver: RecvInto, and a CancelRecv
// that waits for the receive to end, since the kernel writes the caller's
// buffer until then; stream Reads used it, passed the socket and
// cooperative suites on this loop) and e65544b took it out, because the
// bench did not move. evhub-uring's server CPU per round trip at 1 / 64 /
// 1,000 connections (go build -tags cev,uring -o /tmp/evhub-R ./cmd/evhub
// at 610a2fa; EVHUB_NO_RECVINTO=1 and =0 alternately, twice each:
// /tmp/evhub-R bench -backend uring -workload
// pingpong-1,pingpong-64,pingpong-1000 -reps 3 -duration 1s -warmup
// 250ms -micro 0; 2-core VM, otherwise quiet):
//
//	readiness, then read(2)    23.6 / 10.2 / 11.6     23.6 / 10.4 / 11.8 µs
//	receive into the buffer    24.0 / 10.6 / 11.6     23.0 / 10.4 / 11.2 µs
//	the same, POLL_FIRST       23.2 / 10.2 / 11.5     23.2 / 10.4 / 11.3 µs
//
// (raw liburing 20.8-21.5 / 9.5-9.7 / 10.1-10.4 µs in three of those
// runs). The CPU profile says where the saving went
// (EVHUB_BENCH_CPUPROFILE=/tmp/prf with -workload pingpong-64 -reps 1
// -duration 8s; go tool pprof -top):
// with readiness, read(2) took 25% of the server's CPU, write(2) 57% and
// io_uring_enter 7%; with the receive, read(2) was gone and write(2) took
// 69%, io_uring_enter 14%. The receive's work is the same TCP work, run
// as task work at the thread's next entry into the kernel, which in an
// echo is the write; what a system call's entry costs is not where the
// time goes. A Read would also need a Post per wait (a level watch stays
// armed across waits and needs none) and a synchronous cancellation on
// every deadline and Close. Hub sockets therefore wait on readiness on
// every loop.
//
// # Figures
//
// Server CPU per 64-byte round trip (µs) and server memory per idle
// connection, from the bench with the libev and liburing rows beside this
// backend's (built with -tags "cev uring"; liburing is an io_uring echo
// server in C, bench/rawuring_uring.go):
//
//	go build -tags cev,uring -o /tmp/evhub ./cmd/evhub
//	/tmp/evhub bench -backend cev,uring -workload pingpong-1,pingpong-64,pingpong-1000,idle-5000 -reps 3 -duration 1s -warmup 250ms -micro 0
//
// Medians of 3, on the 2-core VM while other work kept its load average
// at 13-19 (so absolute figures are inflated; compare within a column):
//
//	row                1 conn   64 conns   1,000 conns   idle B/conn
//	libev (C)           92.4     15.0       11.7           105
//	liburing (C)       111.3      9.9        8.6           459
//	evhub-cev          115.1     21.2       17.5         8,416
//	evhub-uring        109.4     20.2       16.7         8,389
//	evhub-cev-task     122.1     23.7       26.7        11,656
//	evhub-uring-task   116.3     21.9       24.3        11,570
//	reactor-cev        114.6     15.3       16.3           772
//	reactor-uring      101.3     16.4       18.4           435
//
// Hub sockets on this backend take 0.95× the CPU per round trip of the
// same code on libev (evhub-uring ÷ evhub-cev at 1, 64 and 1,000
// connections), tasks 0.92-0.95×, the reactor 0.88-1.13×; against the C
// servers, hub sockets take 1.2-1.4× libev's CPU and 1.0-2.0× liburing's.
// The loop is not where that time goes: a CPU profile of BenchmarkPingPong
// (go test -tags uring -run '^$' -bench PingPong/wait=level -benchtime
// 20000x -cpuprofile cpu.out ./backends/uring/) puts 76% of it in
// syscalls (read, write, io_uring_enter) and under 5% in the loop's own
// code. The liburing server does no read or write syscall per message
// (multishot receive into a provided-buffer ring, sends as requests, one
// io_uring_enter per batch, DEFER_TASKRUN on its one thread); that is the
// gap completion I/O (above) narrows. An idle reactor connection costs
// 435 B of server RSS, of which the loop's watch is the 48 B above (and
// the garbage collector's headroom on it); the rest is the reactor's
// connection state.
package uring

// Name is the backend's registered name.
const Name = "uring"
