// Package evio is the evhub loop backend on github.com/tidwall/evio v1.0.8.
// Importing it registers the backend as "evio" with [loop.Register]; open
// a loop with loop.Open("evio") or [New]. Build the root package with
// -tags evio to make it the default backend. It runs on Linux only (it
// drives evio's epoll poller; elsewhere [New] returns an error wrapping
// errors.ErrUnsupported).
//
// evio is unmaintained since 2022. It owns its sockets: it accepts, reads
// and writes them in callbacks of its own loop, and offers no public way
// to watch an arbitrary fd or to dial. So this backend:
//
//   - serves hub listeners (tcp, tcp4, tcp6, unix) through the optional
//     [loop.StreamServer] capability, which the scheduler uses for Listen:
//     accepted conns are ordinary hub conns (same scheduler, errors,
//     deadlines and conformance cases as on every backend);
//   - declares unsupported, with errors wrapping errors.ErrUnsupported:
//     Watch (no fd watchers), Dial, and ListenPacket (evio answers a
//     datagram only from inside its Data callback, to its sender: no
//     WriteTo, and no open or close events). The conformance suite shows
//     exactly those cases as n/a.
//
// # The loop
//
// The loop goroutine is the one that calls Run or RunOnce, as the contract
// requires; evio's callbacks run on goroutines of evio's, so they never
// call a handler themselves. Posts ([loop.PostQueue], woken through a Go
// channel, which cannot lose a wake-up), timers ([loop.TimerHeap] under a
// runtime timer) and signals ([loop.SignalRelay]) are the shared helpers.
// Each ServeStream starts its own evio.Serve (evio takes every address up
// front, and closing one of its listeners would stop all of them) with
// NumLoops 1, and every event of every server reaches the loop goroutine
// as a post, in order: callbacks of the loop still run one at a time on
// one goroutine. Other goroutines run code on an evio goroutine through
// its server's "kick" connection: a private unix socket in a 0700
// directory, removed once connected, whose bytes evio reads like any
// connection's.
//
// # evio's defects, and what neutralising each costs
//
// Figures from a 2-core VM (go test -bench 'Workarounds|
// EchoPingPong' ./backends/evio/, and evhub bench; runs move by tens of
// percent between runs).
//
//   - Lost wake-ups: evio's Wake queues a note and writes an eventfd that
//     the loop may drain after collecting notes, so ~0.3-0.5% of Wakes sit
//     until epoll's 100 ms timeout (BenchmarkRawEvioWake measures it on raw
//     evio). Nothing here relies on Wake alone: commands go through the kick
//     socket (level-triggered: a byte cannot be missed; 6-9 µs a round
//     trip), and each Wake the backend still needs (to hand evio output, or
//     a close) is followed by a kick. The backend counts every wake evio
//     has not delivered by the kick round after the one that issued it;
//     TestNoWakeStall runs 20,000 writes through that path and requires
//     the count to stay 0, and BenchmarkWakeStall reports their latency
//     (a lost wake-up would show as a max near 100 ms).
//   - Output handed back from Data(c, nil) after a Wake replaces the
//     output evio still holds, silently dropping bytes. Writes here go
//     straight to the kernel, from the writer's goroutine, through a
//     close-on-exec duplicate of evio's fd (one syscall per Write, one fd
//     per conn); only when the kernel's buffer is full does a stream hand
//     evio one chunk (64 KiB), and only while evio's own buffer is empty —
//     read on the evio goroutine from evio's private state (18 ns). No
//     byte is lost: TestExact64MiB writes 64 MiB in writes of 1 byte to
//     1 MiB to a slow reader and checks every byte.
//   - Unbounded output buffering with no backpressure signal: a stream
//     takes nothing more until evio has written its chunk (evio's PreWrite,
//     then a drain check on the next iteration), so Write blocks, or
//     returns at its deadline, when the peer does not read; user-space
//     output per conn is at most two copies of one chunk
//     (TestWriteBackpressure, TestWriteBlocksWithoutDeadline).
//   - No pause for reading: streams start with reading paused, so bytes
//     nobody asked for stay in the kernel (a Close with unread data then
//     resets the connection, as net's does); the scheduler resumes reading
//     on the first Read and pauses it past 256 KiB unread, and a stream
//     pauses itself past 1 MiB not yet handled by the loop. Bytes read
//     ahead and never read make Close a reset too on TCP (SO_LINGER 0: the
//     scheduler sets it for bytes it holds, the stream for bytes evio read
//     that the loop has not handled). A unix socket cannot do that: the
//     kernel resets a unix peer only for bytes it still holds, so there
//     the peer reads io.EOF (declared: loop.CapUnixUnreadReset).
//     A peer's reset is a pending socket error that the kernel reports
//     once, to the next read (on TCP, or write). evio reads ahead, and the
//     MSG_PEEK below takes it too: the stream keeps it and reports it once,
//     to the next read or TCP write, as the kernel would have. A TCP write
//     that fails with EPIPE may have come just after evio's read took the
//     reset, before evio's Closed handed it over: it waits for the evio
//     goroutine to catch up (a round trip through the kick socket, only on
//     that error) and reports the reset in its place. Pausing is an
//     epoll_ctl on evio's poller (one syscall per change); each time evio
//     re-arms a paused fd after writing, one more read of at most 64 KiB can
//     slip through (TestReadBackpressure, the suite's SlowReader cases).
//   - evio closes a connection as soon as a read returns EOF (or an
//     error), so a conn whose peer only half-closed it could not answer.
//     After each read that drained the socket, a MSG_PEEK recv (0.7 µs)
//     finds a queued EOF or error before evio reads it, and the stream
//     leaves evio's poller and lives on its duplicate (detached). evio
//     reads the EOF or reset first whenever nothing was queued before it
//     (an idle stream that reads, or a paused one on a hang-up, which
//     epoll reports whatever the mask), and closes its fd without
//     deleting its epoll registration, which the duplicate keeps alive:
//     fcntl(F_DUPFD) takes back the just-closed number to delete it, and
//     if another thread took the number first, a thread of the backend's
//     own deletes it through a private descriptor table (made by
//     close_range with CLOSE_RANGE_UNSHARE; the socket and the poller
//     fetched into it with pidfd_getfd; then dup3 and EPOLL_CTL_DEL
//     there; the thread ends with its goroutine; TestSalvageAfterFDReuse).
//     Only where unshare is refused does the stream end as evio ended it:
//     writes fail with EPIPE ("evio closed the connection at the peer's
//     EOF") where net's may still succeed. A detached stream is a
//     [loop.DirectReadStream]: the scheduler reads it directly, so what
//     reads return after the EOF (a reset, bytes after CloseRead) is the
//     kernel's answer, as on net. Writability of such a stream is waited
//     for with poll(2) by a goroutine, in 10 ms slices (TestHalfClose).
//   - CloseRead: a shutdown(SHUT_RD) queues an EOF that evio would read
//     and take for the peer's, so the stream first leaves evio's poller
//     (on the evio goroutine, where evio cannot read in between) and is
//     then shut down and read directly: the kernel answers the shutdown
//     (ENOTCONN once it has closed the connection), the reads after it
//     (bytes already there, and on TCP bytes that come later) and the
//     peer's writes (EPIPE on a unix socket), as with net. While evio
//     still holds output for the stream it stays in evio's poller, and
//     the EOF evio then reads detaches it as above.
//   - When its server stops, evio closes each listening fd twice
//     (syscall.Close, then os.File.Close of the same number), closing
//     whatever another goroutine opened in between. evio's Serve runs on a
//     locked thread (never the main one) that, at the last connection's
//     Closed, takes a private descriptor table; evio's final closes land
//     there, and the backend closes each of those descriptors once in the
//     process's table. A private table holds none of the process's
//     sockets: close_range with CLOSE_RANGE_UNSHARE copies only the
//     numbers up to the last it keeps (standard I/O and the runtime's
//     poller and its eventfd, opened early: the epoll instance that
//     watches a pipe the package opens as it starts; the free numbers
//     below them get /dev/null placeholders then, so that no socket can
//     take one), drops at once, with raw system calls, whatever else
//     that copied, and fetches any other file it needs with
//     pidfd_getfd. A
//     copy would hold open any socket another goroutine closed meanwhile,
//     its peer seeing the close only when the copy goes (stale.go,
//     TestDropCopied, TestCopiesSkipReusedNumbers,
//     TestPrivateTableCopiesNoSocket, TestCopiesKeepOnlyTheRuntimePoller,
//     TestFillHoles).
//     Cost: one idle locked thread per listener, a few close_range calls
//     per stop.
//   - An accept error other than EAGAIN (EMFILE, ECONNABORTED) ends evio's
//     whole server and closes every connection. Listeners are armed only
//     while an Accept waits and two descriptors are free (checked before
//     arming and after each accept, 2 µs), with a 5 ms-1 s back-off, like
//     the fd-based Accept. ECONNABORTED cannot be foreseen: a client that
//     resets before evio accepts it still ends the server (a residual
//     risk; ListenerFailed reports it).
//   - Closing a listener would stop its server and close its connections:
//     the listening fds leave evio's poller and the socket is shut down
//     (connecting fails with ECONNREFUSED); the server lives on until its
//     last connection is gone.
//   - evio removes a unix socket's path (os.RemoveAll: a file, or a whole
//     directory tree) before listening, where net fails with EADDRINUSE:
//     an existing path is refused with net's own error first. evio removes
//     the path again when its server stops, so a socket re-created at that
//     path meanwhile would lose its name (a residual risk).
//   - evio overwrites a connection's pending action with each Data
//     event's: once a close was requested, every Data event returns Close.
//   - evio accepts without SOCK_CLOEXEC and sets no TCP_NODELAY: the
//     backend sets FD_CLOEXEC at Opened, the scheduler net's TCP defaults.
//   - evio panics when it cannot create its poller (recovered) or when an
//     epoll_ctl fails on its loop goroutine (not recoverable).
//
// evio copies each read into a fresh slice unless a connection asks it
// to reuse its loop's one read buffer. A handler that borrows Data's
// bytes ([loop.DataBorrower]; the reactor's does) gets them in pooled
// buffers (readbuf.go), taken back when its Data returns: no allocation
// per read. A handler that keeps them (the scheduler's) gets evio's
// copies; TestDataBorrower checks both. With the reactor's own savings of
// the same commit (f269b3b), its server RSS per idle connection on this
// backend went from 727 to 509 B (evhub bench -backend evio -workload
// idle-5000 -reps 3 -micro 0: RSS growth while 5,000 connections arrive
// and echo once each, which stays under the garbage collector's 4 MiB
// minimum heap, so bytes made and dropped per connection count as much as
// bytes kept).
//
// One hop to the loop goroutine per event is the price of running
// callbacks where the contract says (about 1 µs a post round trip). In
// evhub bench (server and client pinned to one CPU each, GOMAXPROCS=1),
// the hub on evio cost 0.81× raw evio's server CPU per round trip at one
// connection, 0.89× at 64 connections, and 0.49× with 16 KiB messages
// (where the hub's echo reads and writes 4 KiB at a time, as the stdlib
// row's code does, while raw evio echoes a message in one write). With one
// P, callbacks yield after readying the loop goroutine; without that
// yield the same runs give 0.66× and 0.75× (see yield in events.go).
//
// # evio's private state
//
// Several of these need what evio keeps private: a connection's fd, how
// much output it still holds, its poller's epoll and eventfd, its loop's
// connection count. The backend reads them through reflect, read-only, on
// the goroutine that owns them; the layout of v1.0.8 is checked once, a
// different evio fails loudly instead of misbehaving, and TestEvioInternals
// pins it. evio's listening fds are found by their address among the
// process's descriptors.
//
// # Other limits
//
// RawConn.Read and
// Write on a conn pause evio's reading and wait with poll(2) in 5 ms
// slices, since evio cannot report readiness without doing the I/O
// itself. Close lets evio flush the one chunk it may hold first, as the
// kernel flushes its buffer after close(2); otherwise Close returns once
// the socket is released (a peer's write right after it fails, as after
// net's Close), while with a chunk held for a peer that does not read,
// the socket lives until evio has written it. evio closes a socket only
// at an event of it, which a full send buffer gives only once the peer
// reads: Close then first does what close(2) would (a unix socket shut
// down both ways, a TCP one's FIN queued, or its RST sent by a
// disconnect when it is to reset), which also gives evio its event
// (TestCloseUnwritableUnix, TestCloseUnwritableTCP,
// TestCloseUnwritableResetTCP). Bytes evio read but had not yet handed
// over when the Close came make its close a reset, as those net's
// kernel held would (TestCloseDuringReadResets).
package evio
