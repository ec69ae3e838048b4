//go:build darwin || freebsd || netbsd || dragonfly

package conformance

import "golang.org/x/sys/unix"

// keepAliveOpts are the keep-alive probe interval and count, compared
// after each step (the idle time's option is named differently per BSD).
var keepAliveOpts = []sockopt{
	{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, true, false},
	{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, true, false},
}
