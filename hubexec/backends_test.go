package hubexec_test

// Every backend runs these tests: netpoll, gnet and cev watch the child's
// pidfd, evio (no fd watching) waits through scheduler.Blocking.
import (
	_ "github.com/evhub/evhub/backends/evio"
	_ "github.com/evhub/evhub/backends/gnet"
	_ "github.com/evhub/evhub/backends/netpoll"
)
