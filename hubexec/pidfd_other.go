//go:build !linux

package hubexec

// openPidfd: only Linux has pidfds; the child is then waited for in
// wait4, bounded by waitSlots.
func openPidfd(pid int) int { return -1 }

func waitPidfd(pidfd int) error { return nil }
