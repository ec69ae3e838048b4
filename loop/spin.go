package loop

// Spinner is implemented by loops that, after an iteration that ran
// callbacks, poll a few more times without blocking before they sleep in
// the kernel, because a goroutine the callbacks woke often posts or
// writes at once and a blocked loop would need a wake-up for it. Each
// such poll is a system call. A user whose callbacks seldom wake
// goroutines — a callback-level server such as package reactor, whose
// callbacks answer I/O with I/O — turns them off.
type Spinner interface {
	// SetSpin sets how many non-blocking polls follow an iteration that
	// ran callbacks; a negative n restores the loop's default. Call it
	// on the loop goroutine or before Run.
	SetSpin(n int)
}
