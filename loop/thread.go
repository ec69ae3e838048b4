package loop

// ThreadRunner is an optional interface of loops that run cheaper on a
// goroutine locked to one OS thread for their whole life: an io_uring
// ring that only one thread submits to can leave the completions' task
// work for that thread to run when it next waits (Linux's
// IORING_SETUP_SINGLE_ISSUER and DEFER_TASKRUN), instead of interrupting
// whichever thread last submitted. A loop whose goroutine moves between
// threads, as goroutines do, cannot have that.
//
// The price is paid whenever the loop goroutine parks or yields: the
// runtime must then hand its thread over to another, which costs tens of
// microseconds where an unlocked goroutine switch costs a fraction of
// one. So only a caller whose callbacks answer I/O with I/O and seldom
// wait for other goroutines (package reactor) runs a loop this way; the
// scheduler, whose callbacks ready the goroutines blocked in Read and
// Write, does not.
type ThreadRunner interface {
	// RunOnThread locks the calling goroutine to its OS thread, binds the
	// loop to that thread if nothing has yet been given to the kernel
	// (otherwise the loop runs unbound), runs the loop as Run does, then
	// closes it on the same thread (a later Close is a no-op) and unlocks
	// the goroutine. It returns Run's error joined with Close's.
	RunOnThread() error
}
