package scheduler

import (
	"fmt"
	"syscall"
)

// OpenBSD has no per-socket keep-alive timing (only the sysctls
// net.inet.tcp.keepidle and keepintvl): say so rather than pretend.
func setKeepAliveIdle(fd int, secs int) error {
	return fmt.Errorf("per-socket keep-alive period on OpenBSD: %w", syscall.ENOPROTOOPT)
}

func setKeepAliveInterval(fd int, secs int) error { return nil }

func setKeepAliveCount(fd int, n int) error { return nil }
