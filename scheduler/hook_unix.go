package scheduler

import (
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/nbsock"
)

// Every socket syscall of the scheduler goes through these variables, as
// net's do through socketFunc, connectFunc and the rest (net/hook_unix.go):
// fault-injection tests replace them with a switch that makes a call fail
// or come back short (hook_export_test.go). Nothing else assigns them.
var (
	socketFunc        = nbsock.Socket
	acceptFunc        = nbsock.Accept
	connectFunc       = unix.Connect
	readFunc          = unix.Read
	writeFunc         = unix.Write
	recvfromFunc      = unix.Recvfrom
	sendtoFunc        = unix.Sendto
	closeFunc         = unix.Close
	setsockoptIntFunc = unix.SetsockoptInt
	getsockoptIntFunc = unix.GetsockoptInt
)
