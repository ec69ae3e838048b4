// Package nbsock opens and accepts non-blocking, close-on-exec sockets in
// the way each platform allows: one syscall where the kernel takes the
// flags with the call (Linux and the BSDs' accept4), the call then fcntl
// under syscall.ForkLock where it does not (Darwin), so that a concurrent
// fork never inherits the fd. The scheduler and the reactor share it.
package nbsock
