//go:build linux

package conformance_test

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// TCP_INFO (the peer's view of the connection's state) is Linux's: the
// check below runs there only.

// knownAsyncClose lists the hubs whose Close returns before the peer's
// kernel has seen the close (none: evio's Close waits until its socket is
// released, unless evio holds output for a peer that does not read, which
// net's kernel would flush in the background). The fuzzer found the
// divergence with
// testdata/fuzz/FuzzHubs/evio-close-with-unread-bytes: Close A; B writes; B
// reads: EOF from net, ECONNRESET from a hub whose close came late.
var knownAsyncClose = map[string]bool{}

// TestCloseReachesPeer measures, over 200 rounds per network, how often
// the peer's kernel had not yet seen the FIN when Close returned: never
// (within 2% for a loaded machine's deferred softirqs) for net and for
// every hub but the known divergences, often for those.
func TestCloseReachesPeer(t *testing.T) {
	if _, err := unix.GetsockoptTCPInfo(0, unix.IPPROTO_TCP, unix.TCP_INFO); err == syscall.ENOSYS {
		t.Skip("no TCP_INFO on this platform")
	}
	nets := map[string]conformance.Network{"std": conformance.StdNetwork}
	for _, name := range loop.Names() {
		h, err := evhub.Open(name)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, h.Close()) })
		nets[name] = h
	}
	for name, n := range nets {
		t.Run(name, func(t *testing.T) {
			ln, err := n.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			const rounds = 200
			late := 0
			for range rounds {
				peer, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(t, err)
				c, err := ln.Accept()
				require.NoError(t, err)
				require.NoError(t, c.Close())
				info, err := tcpInfo(peer)
				require.NoError(t, err)
				if info.State == 1 { // ESTABLISHED: no FIN yet
					late++
				}
				require.NoError(t, peer.Close())
			}
			t.Logf("%s: the peer had not seen the close when Close returned in %d of %d rounds", name, late, rounds)
			if knownAsyncClose[name] {
				if late <= rounds/50 {
					t.Errorf("known divergence fixed? %s's Close now reaches the peer (%d late of %d): remove it from knownAsyncClose", name, late, rounds)
				}
				return
			}
			assert.LessOrEqual(t, late, rounds/50, "%s: Close returned before the peer's kernel had the FIN", name)
		})
	}
}

func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		info *unix.TCPInfo
		ierr error
	)
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return nil, err
	}
	return info, ierr
}
