//go:build !linux

package hubexec

// openPidfd: only Linux has pidfds; the child is then waited for with
// scheduler.Blocking.
func openPidfd(pid int) int { return -1 }
