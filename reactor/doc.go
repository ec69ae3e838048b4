// Package reactor is evhub's callback-level connection API: a Handler is
// told when a connection opens (OnOpen), has data (OnData) and closed
// (OnClose, with the reason), on N loops of any evhub backend, with no
// goroutine per connection. It is the level at which gnet, evio, nbio and
// cloudwego/netpoll are used, offered on every loop behind the same
// conformance suite (conformance.TestReactor), and it knows no backend: it
// sees only loop.Loop and the optional loop.StreamServer and
// loop.Completer.
//
//	srv, err := reactor.New(handler, reactor.Options{Backend: "gnet"})
//	addr, err := srv.Listen("tcp", "127.0.0.1:7008")
//	...
//	err = srv.Shutdown(ctx)
//
// # Threads
//
// A server runs Options.Loops loops (default GOMAXPROCS), each a loop.Loop
// of the chosen backend on a goroutine of its own. A connection belongs to
// one loop for its whole life, and every callback of it runs on that
// loop's goroutine, one at a time: handler state needs no locks (keep it
// in Conn.SetContext). A Conn's methods are for that goroutine only,
// except AsyncWrite and Post, which any goroutine may call. Handlers must
// not block; blocking work goes to a goroutine, whose result comes back
// through AsyncWrite or Post — or the connection leaves the reactor for
// blocking code altogether with Conn.HandOver.
//
// # Input
//
// Each loop owns one read buffer (Options.ReadBufferSize, 64 KiB), which
// every read of every connection of the loop goes into. During OnData the
// connection's input is a view: Peek (look), Next (take), Discard (drop)
// and InboundBuffered (count). A slice Peek or Next returns points into the
// loop's buffer (or into the connection's leftover buffer) and is valid
// until OnData returns: read it, parse it, write it, copy what you keep —
// never keep the slice. Bytes not taken when OnData returns are copied to
// a pooled buffer of the connection and presented again, followed by the
// new bytes, on the next OnData, which comes when more bytes arrive. So a
// handler that needs a whole frame returns without taking anything until
// InboundBuffered says the frame is there (examples/reactorresp).
//
// On a loop that does a socket's I/O itself (loop.Completer: uring) the
// bytes come from the loop's receive instead of a read(2), and the view is
// the loop's receive buffer, with the same rules. See "Completion I/O".
//
// # Output
//
// Write and Writev copy into the connection's pooled output buffer; when
// the callback returns, the reactor sends everything the callback wrote in
// one write(2). Whatever the kernel does not take stays buffered and goes
// out as the socket becomes writable. AsyncWrite queues bytes from any
// goroutine, with a completion callback on the loop once the kernel has
// them; the loop is woken once (a Post) for everything queued until it
// drains its inbox, so a burst of asynchronous writes is one wake-up.
//
// Backpressure both ways: when a connection's pending output exceeds
// Options.HighWater (1 MiB), the reactor stops reading it (no OnData)
// until the output drains to Options.LowWater (256 KiB) — an echo to a
// slow reader holds at most about HighWater, whatever the peer sends — and
// AsyncWrite refuses more with an error wrapping ErrBackpressure instead
// of buffering without bound. DrainHandler.OnDrain tells a producer when
// to resume.
//
// # Completion I/O
//
// When the loop offers loop.Completer, a connection does not watch its
// socket: it keeps one receive armed (the loop's Recv, which holds no
// buffer while nothing arrives) and sends with the loop's Send. OnData
// runs with the received bytes as its view, and what it leaves is copied
// as above. The output a callback wrote goes in one Send; while it is in
// flight (one per connection) later writes are buffered behind it and
// leave together when it completes, so the sends of a busy loop reach
// the kernel in its one io_uring_enter per iteration instead of a
// write(2) each. Everything else is kept: AsyncWrite's callbacks run once
// the Send that carried their bytes completed; the high- and low-water
// marks count the bytes in flight; Close and CloseWrite wait for them;
// pausing for backpressure and HandOver stop the receive, and bytes the
// loop had already taken from the socket as it stopped (loop.Completer
// gives them to the callback during Stop) become input: shown first on the
// next OnData, or handed over ahead of the socket's. A connection closed
// abruptly (an error, a timeout, Shutdown's deadline) with a Send in
// flight shuts its socket down at once and closes the fd when the send
// has failed, so that no new socket takes the fd's number while the loop
// still names it.
//
// Options.NoCompletion keeps readiness (Watch, read(2), write(2)) on such
// a loop. Completion is the default because it costs less CPU wherever
// several connections are busy, and the same with one; readiness holds
// less memory per idle connection (the figures below).
//
// # Memory
//
// An idle connection holds no buffer: input left over and output pending
// live in pooled power-of-two buffers (512 B to 4 MiB, sync.Pool, so the
// garbage collector empties the pools after a burst) that go back the
// moment they empty; a loop also keeps up to 16 small buffers of each
// size class up to 4 KiB at hand, so a ping-pong connection takes and
// returns one without synchronisation. The buffers' slices and offsets
// sit in a connBufs that the connection holds only while it holds bytes
// (each loop keeps 64 spare ones). What an idle connection costs the
// reactor is its Conn, 80 bytes (TestConnSize: no buffers, addresses,
// timers or completion lists unless used; LocalAddr and RemoteAddr ask
// the kernel), the 16-byte method value the backend calls on readiness,
// and its 8-byte slot in the loop's list of connections (connList: blocks
// of 128 slots and an index in the Conn, not a map or a linked list); the
// backend's watcher is the rest. On a loop.Completer the Conn is 64
// bytes (it holds no watcher), the loop's one loop.Receiver serves every
// connection, and the slot is in a table by fd (fdConns), where the
// receive's callbacks find the connection. A new connection makes no garbage either:
// accepting asks the kernel for no peer address, the list grows a block
// at a time where a doubling slice would leave its outgrown copies behind,
// a StreamServer's stream sits in the Conn as is, and the reactor borrows
// a StreamServer's bytes (loop.DataBorrower) so that a loop that would
// allocate a copy of every read (evio) lends a pooled buffer instead.
// That matters to the bench's memory figure: it is the RSS a server gains
// while its idle connections arrive and echo once each, and with 5,000
// of them the heap stays below the collector's 4 MiB minimum, so no
// collection runs and every byte allocated counts, garbage or not.
// Steady traffic allocates nothing per event (TestNoAllocationPerEvent).
//
// Measured on a 2-core VM shared with other work (loaded: load average
// about 15 on 2 cores; ratios within one run only):
//
//	go test -run XXX -bench IdleHeap -benchtime 1x ./reactor/
//	    live heap per idle connection (1,000), at 553da2b: on gnet 259 B,
//	    of which the backend's watcher 171 B (measured alone on a bare
//	    loop) and the reactor 88 B; on netpoll 145 B (its watchers are
//	    items of one epoll instance of its own; 841 B when each was a
//	    dup'd fd with a parked goroutine); on evio 438 B (1,147 B before
//	    553da2b): evio's own connection, its addresses and its fd map
//	    about 250 B, the backend's stream 96 B (the handler's Conn rides
//	    in it: loop.ContextStream), the Conn 80 B
//	go test -tags uring -run XXX -bench IdleHeap/uring -benchtime 1x -count 3 ./reactor/
//	    on uring with completion I/O 83-89 B (the loop's receive
//	    13 B, the reactor 71-76 B); with NoCompletion 129 B (the
//	    watch 49 B, the reactor 80 B). The receive is 6 bytes of the
//	    loop's table by fd; the benchmark's clients are in the same
//	    process, so every other fd number is a client's and the tables'
//	    shares double. In a server of its own (the bench below) a
//	    receiving connection is its Conn, its slot in the loop's table
//	    by fd and its receive: 64 + 8 + 6 = 78 B of heap by the sizes
//	    TestConnSize and the uring backend's TestRecvEntrySize hold, one
//	    allocation. The Conn is 64 B on a loop with a Completer, whose
//	    receive is named by the fd, and 80 B elsewhere, where it also
//	    holds its watcher or stream (watchedConn)
//	go run -tags cev ./cmd/evhub bench -backend gnet,cev -workload pingpong-1,pingpong-64,pingpong-1000,idle-5000 -reps 3 -duration 1s -warmup 250ms -micro 0
//	    server RSS per idle connection at 5,000 (medians of three):
//	    reactor-gnet 300 B, raw gnet 733 B, reactor-cev 386 B, raw
//	    libev (C) 106 B, stdlib 7,916 B
//	go test -run XXX -bench HeapAfterBurst -benchtime 1x -count 3 ./reactor/
//	    1,000 connections echo 256 KiB each at once: live heap 1,936 to
//	    2,156 KiB idle, up to 252 MiB during the burst, 1,928 to 1,964
//	    KiB one second later (after two collections), each run within 5%
//	    of its idle figure. Both figures hold the descriptors of the
//	    in-process clients' 2,000 goroutines, which the runtime keeps for
//	    reuse once they exit (the benchmark has as many exit before the
//	    idle figure); the loop's cache of small buffers is at most 16 of
//	    each size up to 4 KiB
//
// # CPU
//
// Per round trip of an echo the reactor makes the system calls raw gnet
// and raw libev make: one read into the loop's buffer, one write of what
// the callback wrote, and a share of the poll that found the socket
// ready. What a backend adds is its own: the gnet backend on Linux polls
// as gnet's engine does, once per batch (on kqueue it polls twice: see
// backends/gnet). Loops that poll again without blocking after
// a batch so that goroutines woken by callbacks can post back at once
// (loop.Spinner: cev) are told not to: the reactor's callbacks answer I/O
// with I/O, and each such poll is a system call per round trip.
//
//	go run -tags cev ./cmd/evhub bench -backend gnet,cev -workload pingpong-1,pingpong-64,pingpong-1000 -reps 3 -duration 1s -warmup 250ms -micro 0
//	    server CPU per round trip, medians of three, row ÷ raw at 1 / 64
//	    / 1,000 connections, two runs of the command a few minutes apart
//	    (load average 13 to 15 on the 2 cores):
//	    reactor-gnet ÷ raw gnet       0.99 / 1.20 / 1.30 and 1.15 / 0.81 / 0.96
//	    reactor-cev ÷ raw libev (C)   1.00 / 1.02 / 1.87 and 1.27 / 1.23 / 1.89
//	    In the first run the reactor rows at 64 and 1,000 connections got
//	    a fraction of the server's core (reactor-gnet 7% busy at 4,100
//	    round trips/s against raw gnet's 27% at 19,565): on this machine a
//	    single ratio moves by ±25% from run to run, and only the direction
//	    of several runs says anything. The one that holds in both is
//	    reactor-cev at 1,000 connections: raw libev's echo is C from end
//	    to end, inside one ev_run, while the reactor's reads and writes
//	    are Go system calls (the runtime's entry and exit on each) and
//	    every iteration of the cev loop is one cgo call; the reactor's own
//	    functions are under 2% of the server's samples there
//	    (perf record on the server process).
//
// On uring the reactor uses completion I/O (see above), which leaves out
// the read and the write of every message; what remains per round trip is
// a share of the enter that submits the sends and receives of a batch and
// waits. Readiness (the commit before completion, which
// Options.NoCompletion reproduces) against completion, the same bench
// built from each tree and run alternately, three times each, between
// 16:29 and 16:55 UTC on a 2-core VM shared with other work (load average
// 5 to 11):
//
//	go build -tags cev,uring -o /tmp/evhub ./cmd/evhub
//	/tmp/evhub bench -backend cev,uring -workload pingpong-1,pingpong-64,pingpong-1000,idle-5000 -reps 3 -duration 1s -warmup 250ms -micro 0
//	    server CPU per round trip (µs) of reactor-uring at 1 / 64 / 1,000
//	    connections, medians of three, in each of the three runs:
//	    readiness   104.1 / 19.1 / 25.2   88.0 / 13.4 / 15.6   109.5 / 17.3 / 24.0
//	    completion  123.4 / 16.4 / 16.1  100.8 / 11.3 / 14.7    94.7 / 11.9 / 13.1
//	    the same ÷ reactor-cev of the same run (the same reactor on libev,
//	    which neither tree changed: the control for the machine's load):
//	    readiness   0.97 / 0.88 / 0.91   1.23 / 0.97 / 1.16   1.10 / 1.27 / 1.07
//	    completion  0.96 / 0.74 / 0.71   1.12 / 0.70 / 0.64   1.05 / 0.96 / 0.83
//	    ÷ raw liburing (C), medians of the three runs: readiness 1.29 /
//	    1.52 / 1.76, completion 1.67 / 1.17 / 1.56; ÷ raw libev (C):
//	    readiness 1.20 / 1.27 / 1.54, completion 1.60 / 0.98 / 1.02
//	    server RSS per idle connection at 5,000: readiness 206-216 B,
//	    completion 333-401 B (raw libev 106-120 B, raw liburing 458 B)
//
// With 64 and 1,000 busy connections completion took 0.6-0.8× the CPU of
// readiness against the same control, in every run; with one connection
// the two are level within this machine's noise (a round trip is then two
// enters, the one that submits the send returning at once with its
// completion, against one enter, a read and a write). So the reactor uses
// completion where the loop offers it. It does not reach the C servers:
// at one connection both C servers' figures moved by 2× between runs, and
// at 1,000 the liburing server, which runs its ring with
// SINGLE_ISSUER|DEFER_TASKRUN on a thread of its own (the Go loop cannot:
// its goroutine moves between threads, see backends/uring), stays ahead.
// Idle memory was the price, in RSS only: a receive's op in the loop
// holds less heap than a watch (40 B with its slot, against 48 B), but
// the pages of the loop's provided buffers that receives have touched
// stay. With all 128 buffers in the ring from the start, the kernel took
// them in turn and small messages touched the first page of each (0.5
// MiB per loop: about 100 B per connection at 5,000); the ring now starts
// with 8 and doubles only after an iteration in which a receive found it
// empty (backends/uring), so a loop touches what its bursts need. Two
// builds alternately, twice each (the command above with -backend uring
// -workload idle-5000): reactor-uring 297-299 B per idle connection with
// the full ring, 218-219 B with the growing one (raw liburing 457 B in
// every run); the setup's 32 dials at a time took the ring to 32 buffers
// (128 KiB touched: the Rss of the ring's 2 MiB mapping in
// /proc/PID/smaps of go run -tags uring ./examples/reactorecho -backend
// uring -loops 1, run with GOMAXPROCS=1, holding 5,000 connections that
// echoed once, 32 dialled at a time). Then 197-198 B (against 211-219 B
// in the same runs) once the loop's slot tables grew by fixed blocks
// instead of doubling slices, whose outgrown arrays were garbage the heap
// kept pages for. Then 163 B (the same command, medians of three, at
// 5,000; 197 B in the run before it) once a receive was an entry of the
// loop's table by fd, with the Conn as its receiver, instead of an op, a
// slot and a closure: 48 B and two allocations fewer per connection.
// Then 143 B (the same command, medians of three; 165 B in the run before
// it) once a Conn on a Completer left its watcher to the others
// (watchedConn: 64 B instead of 80) and the loop kept a receive's
// generation beside its receiver instead of in a padded pair (20 B
// instead of 24). The rest is heap: 92 B of live heap per connection by
// the structures' sizes (the Conn's 64 B, its 8-byte slot in the loop's
// list, the receive's 20 B), and the collector's headroom on it. Then
// 120 B at 5,000 and 109 B at 10,000 (the command above with -workload
// idle-5000,idle-10000; 143 B at 5,000 in the run before it) once a
// socket's receives took small buffers (512 B, eight to a page) until one
// came back full: the setup's bursts, which touched 128 KiB of large
// buffers, take small ones, 32 of which span 16 KiB (backends/uring,
// compio.go). Then 95 B at 5,000 and 96
// B at 10,000 (the same command; raw liburing 454 B and 243 B, stdlib
// 7,913 B and 7,805 B in that run) once the loop's one loop.Receiver
// served all its connections, found by fd (fdConns), and the backend kept
// a receiver's id (2 bytes) per fd instead of the receiver (16): 78 B of
// live heap per connection by the structures' sizes (the Conn's 64 B,
// its 8-byte slot in the table by fd, the receive's 6 B). Runs of the
// command vary by a few pages: with -reps 5, four more runs at 5,000 gave
// 101, 103, 103 and 106 B, and two at 10,000 (-workload idle-10000) 94
// and 95 B. Beyond the 78 B of structures that leaves 23-28 B per
// connection at 5,000 and 16-17 B at 10,000: taken as a cost made once
// plus one per connection, the two counts put it at about 90 KB made
// once and about 8 B per connection.
//
// # Sockets
//
// Accepted TCP connections get TCP_NODELAY and net's keep-alive (probes
// after 15 s idle, every 15 s, 9 of them), as net.ListenConfig gives
// them; Options.KeepAlive and KeepAliveConfig change it with net's
// semantics, and Dial passes them to its net.Dialer. Enrolled sockets keep
// the keep-alive settings their owner gave them.
//
// # Loops and balance
//
// With Balance RoundRobin or LeastConnections, one listening socket is
// watched by the first loop, which accepts and hands each connection to a
// loop (through that loop's inbox: one Post for a burst). ReusePort gives
// every loop a listening socket of its own on the same port
// (SO_REUSEPORT): no hop, but the kernel spreads by a hash of the
// addresses, which is uneven for few clients. Dial and Enrol use the same
// choice.
//
// # Timeouts, shutdown, panics
//
// Read and idle timeouts (Options, Conn.SetReadTimeout,
// Conn.SetIdleTimeout) are loop timers, created only for connections that
// have one; activity only stores a timestamp, and the timer, when it
// fires, re-arms itself for what is left. Shutdown closes the listeners,
// waits for connections to finish until its context ends, then closes the
// rest (reason ErrServerClosed) and the loops; Close does it at once. A
// handler that panics closes its connection, with a *PanicError as the
// reason, and the server goes on.
//
// # Loops that own their sockets
//
// evio cannot watch an arbitrary fd; it serves listeners itself through
// loop.StreamServer. On such a loop a server has one loop (more is an
// error wrapping errors.ErrUnsupported), and Dial, Enrol and HandOver are
// unsupported the same way; everything else behaves the same, and the
// conformance suite shows the rest as n/a.
package reactor
