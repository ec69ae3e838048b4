package loop

// Completer is an optional capability of loops that do a stream socket's
// I/O themselves and report its completion (io_uring), instead of
// reporting readiness and leaving the read and write syscalls to the
// caller. Callbacks run on the loop goroutine, one at a time, like every
// other callback of the loop; the methods are called from the loop
// goroutine. A caller that finds no Completer uses Watch.
type Completer interface {
	// Recv receives on the non-blocking stream socket fd until stopped:
	// cb runs with each chunk of bytes received, in order. p is valid
	// only during the call (the loop reuses its buffer); no buffer is
	// held for a socket while nothing arrives. At the end of the stream
	// cb runs once with (nil, io.EOF), on an error once with (nil, err)
	// (a *os.SyscallError); either is its last call. After Stop returns,
	// cb never runs again, and no byte the loop took from the socket is
	// lost: bytes received before the receive ended are given to cb
	// during Stop (an end of stream or an error found then is not
	// reported: the socket reports it again to the next receive), so a
	// caller can stop receiving, to pause or to give the socket away, and
	// find every byte either delivered or still in the socket.
	Recv(fd int, cb func(p []byte, err error)) (Watcher, error)

	// Send writes all of p to the non-blocking stream socket fd, then
	// runs cb with the count written and the error (a *os.SyscallError;
	// n < len(p) only with an error). p must not change until cb runs.
	// Sends on one fd are not ordered among themselves: the caller
	// issues the next once the previous one's cb has run.
	Send(fd int, p []byte, cb func(n int, err error)) error
}
