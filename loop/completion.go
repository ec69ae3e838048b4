package loop

// Completer is an optional capability of loops that do a stream socket's
// I/O themselves and report its completion (io_uring), instead of
// reporting readiness and leaving the read and write syscalls to the
// caller. Callbacks run on the loop goroutine, one at a time, like every
// other callback of the loop; the methods are called from the loop
// goroutine. A caller that finds no Completer uses Watch.
//
// A receive is named by its fd, as a descriptor is in the kernel: an fd
// has at most one receive at a time, the loop keeps its state in a table
// indexed by fd (as libev keeps its watchers per fd), and each callback
// names its fd, so that one Receiver serves every socket of a caller,
// which finds its connection by fd, as the C loops' callers find theirs
// by the watcher or the request's user data. A receiving socket then
// costs the loop a few bytes of that table and no allocation.
type Completer interface {
	// Recv receives on the non-blocking stream socket fd until stopped:
	// r.Received runs with fd and each chunk of bytes received, in order. p is
	// valid only during the call (the loop reuses its buffer); no buffer
	// is held for a socket while nothing arrives. At the end of the
	// stream it runs once with (nil, io.EOF), on an error once with (nil,
	// err) (a *os.SyscallError); either is its last call, and ends the
	// receive. A second Recv on an fd that is receiving is an error
	// wrapping os.ErrExist.
	Recv(fd int, r Receiver) error

	// StopRecv ends fd's receive; it does nothing if fd has none. After
	// it returns, the receive's Receiver is never called again, and no
	// byte the loop took from the socket is lost: bytes received before
	// the receive ended are given to it during StopRecv (an end of stream
	// or an error found then is not reported: the socket reports it again
	// to the next receive), so a caller can stop receiving, to pause or
	// to give the socket away, and find every byte either delivered or
	// still in the socket. Stop a receive before closing its fd.
	StopRecv(fd int) error

	// Send writes all of p to the non-blocking stream socket fd, then
	// runs cb with the count written and the error (a *os.SyscallError;
	// n < len(p) only with an error). p must not change until cb runs.
	// Sends on one fd are not ordered among themselves: the caller
	// issues the next once the previous one's cb has run.
	Send(fd int, p []byte, cb func(n int, err error)) error
}

// Receiver is told what a Completer's receive on fd got (Completer.Recv).
// A loop keeps its distinct Receivers apart by identity (the same
// pointer, or the same func value), and may bound how many it keeps
// (backends/uring: 65,535): give many fds one Receiver, not one each.
type Receiver interface {
	Received(fd int, p []byte, err error)
}

// ReceiverFunc adapts a function to Receiver.
type ReceiverFunc func(fd int, p []byte, err error)

// Received calls f(fd, p, err).
func (f ReceiverFunc) Received(fd int, p []byte, err error) { f(fd, p, err) }
