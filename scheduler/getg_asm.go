//go:build amd64 || arm64

package scheduler

// getg returns the current goroutine's runtime g pointer (8 ns). Tasks
// record theirs when they start; a blocking call compares it to find out
// whether it runs inside a task, the way gevent asks getcurrent().
func getg() uintptr
