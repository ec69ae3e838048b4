// Package reactor is evhub's callback-level connection API: a Handler is
// told when a connection opens (OnOpen), has data (OnData) and closed
// (OnClose, with the reason), on N loops of any evhub backend, with no
// goroutine per connection. It is the level at which gnet, evio, nbio and
// cloudwego/netpoll are used, offered on every loop behind the same
// conformance suite (conformance.TestReactor), and it knows no backend: it
// sees only loop.Loop and the optional loop.StreamServer.
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
// # Memory
//
// An idle connection holds no buffer: input left over and output pending
// live in pooled power-of-two buffers (512 B to 4 MiB, sync.Pool, so the
// garbage collector empties the pools after a burst) that go back the
// moment they empty; a loop also keeps up to 16 small buffers of each
// size class up to 4 KiB at hand, so a ping-pong connection takes and
// returns one without synchronisation. What an idle connection costs is
// its Conn (144 bytes: no addresses, timers or completion lists unless
// used; LocalAddr and RemoteAddr ask the kernel) and the backend's watcher.
// Steady traffic allocates nothing per event (TestNoAllocationPerEvent).
//
// Measured on a 2-core VM shared with other work (loaded; ratios within
// one run only):
//
//	go test -run XXX -bench IdleHeap -benchtime 1x ./reactor/
//	    server heap per idle connection (1,000): gnet 282 B, netpoll 897 B
//	    (the runtime netpoller needs a dup'd fd and a parked goroutine per
//	    watcher), evio 1,042 B
//	go run ./cmd/evhub bench -backend gnet -workload idle-10000,pingpong-1000 -duration 1s -warmup 250ms -micro 0
//	    server RSS per idle connection at 10,000: reactor-gnet 503 B,
//	    raw gnet 631 B, evhub-gnet (goroutine per conn) 8,315 B;
//	    server CPU per round trip at 1,000 connections: reactor-gnet
//	    17.1 µs, raw gnet 17.9 µs (1.04× in the reactor's favour)
//	go run -tags cev ./cmd/evhub bench -backend gnet,cev -workload pingpong-1,pingpong-64,pingpong-1000,idle-10000 -duration 1s -warmup 250ms -micro 0
//	    (a second run, the machine busier still: stdlib at 90 µs per round
//	    trip at one connection, twice its quiet figure)
//	    bytes per idle connection at 10,000: reactor-gnet 478, raw gnet
//	    603, reactor-cev 589, raw libev (C) 103;
//	    server CPU per round trip, reactor-gnet ÷ raw gnet at 1 / 64 /
//	    1,000 connections: 1.21 / 0.75 / 1.15 (raw gnet itself moved
//	    from 17.9 to 20.6 µs between the two runs at 1,000: on this
//	    machine only repeated runs can settle the CPU target)
//	go run ./cmd/evhub bench -backend gnet -workload pingpong-1,pingpong-64,pingpong-1000 -reps 3 -duration 1s -warmup 250ms -micro 0
//	    medians of three, server CPU per round trip, reactor-gnet ÷ raw
//	    gnet at 1 / 64 / 1,000 connections: 1.12 / 0.84 / 0.96
//	    (hub sockets on gnet, evhub-gnet, in the same run: 1.05 / 1.09 /
//	    0.90)
//	go test -run XXX -bench HeapAfterBurst -benchtime 1x ./reactor/
//	    1,000 connections echo 256 KiB each at once: live heap 825 KiB
//	    idle, up to 252 MiB during the burst, 1,410 KiB one second later
//	    (after two collections; the rest above idle is the loop's cache of
//	    small buffers and the in-process client's dead goroutines, which
//	    the runtime keeps for reuse)
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
