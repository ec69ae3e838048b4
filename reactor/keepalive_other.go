//go:build !linux

package reactor

import "errors"

// Elsewhere the probes' timing is the kernel's: SO_KEEPALIVE alone is set.

func setKeepAliveIdle(int, int) error     { return errors.ErrUnsupported }
func setKeepAliveInterval(int, int) error { return errors.ErrUnsupported }
func setKeepAliveCount(int, int) error    { return errors.ErrUnsupported }
