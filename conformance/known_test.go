package conformance_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// Known divergences from net, found by the differential fuzzer, kept as
// tests that fail once they are fixed (then the case moves into the
// suite). Each names where it lives.

// TestKnownDivergences runs every input of testdata/known-divergences
// (named <backend>-<what>) on its backend and requires that it still
// diverges from net (within 10 runs; some are timing-dependent): a fixed
// divergence fails here, and its input then moves to
// testdata/fuzz/FuzzHubs.
//
//   - cev-write-after-peer-close-rst (rare: three times in about 15
//     million operations on cev and netpoll, in both directions): A
//     closed; B wrote; then B's write of 0 bytes fails with EPIPE on one
//     side and succeeds on the other, so one side's kernel had B's RST
//     and the other's had not, though rule 6 waited 100 ms for it (its
//     bound then; 1 s now), and B's reads had returned EOF on both. Not established where it
//     lives: a closed end that became a FIN_WAIT2 timewait socket
//     answers data outside its window with an ACK and no RST, which
//     would make the reset a matter of timing in the kernel, not in
//     either network.
//   - netpoll-closewrite-after-peer-close (rare: once in about 5
//     million operations, with rule 6's wait for A's FIN to be
//     acknowledged in place): B closed, A called CloseWrite; a second
//     CloseWrite of A, twelve operations later, fails with ENOTCONN on
//     net (A's socket closed in the kernel) and succeeds on the hub (it
//     was not yet). Not established where it lives; the same family as
//     cev-write-after-peer-close-rst: the state of a tcp end whose peer
//     closed, which poll cannot tell.
func TestKnownDivergences(t *testing.T) {
	files, err := filepath.Glob("testdata/known-divergences/*")
	require.NoError(t, err)
	for _, file := range files {
		name := filepath.Base(file)
		backend, _, _ := strings.Cut(name, "-")
		t.Run(name, func(t *testing.T) {
			if !contains(loop.Names(), backend) {
				t.Skipf("backend %s is not linked in", backend)
			}
			input := readCorpusFile(t, file)
			h, err := evhub.Open(backend)
			require.NoError(t, err)
			defer func() { require.NoError(t, h.Close()) }()
			runs := 10
			if rareDivergences[name] {
				runs = 30
			}
			for range runs {
				_, err := conformance.Differential(h, t.TempDir(), input)
				var d *conformance.Divergence
				if errors.As(err, &d) {
					t.Logf("known divergence, still there:\n%v", d)
					return
				}
				require.NoError(t, err)
			}
			if rareDivergences[name] {
				t.Logf("%s did not diverge in %d runs: it depends on timing, and is kept until its cause is fixed", name, runs)
				return
			}
			t.Errorf("%s no longer diverges from net in %d runs: fixed? move it to testdata/fuzz/FuzzHubs", name, runs)
		})
	}
}

// rareDivergences are the known divergences that depend on timing so much
// that a run of their input often does not show them: not reproducing one
// is logged, not a failure.
var rareDivergences = map[string]bool{
	"cev-write-after-peer-close-rst":      true,
	"netpoll-closewrite-after-peer-close": true,
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readCorpusFile reads a one-value "go test fuzz v1" file.
func readCorpusFile(t *testing.T, file string) []byte {
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2, "%s: not a one-value go test fuzz v1 file", file)
	require.Equal(t, "go test fuzz v1", lines[0])
	v, ok := strings.CutPrefix(lines[1], "[]byte(")
	require.True(t, ok, "%s: not a []byte value", file)
	s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
	require.NoError(t, err)
	return []byte(s)
}

// knownAsyncClose lists the hubs whose Close returns before the peer's
// kernel has seen the close (none: evio's Close waits until its socket is
// released, unless the socket cannot take more bytes, where net's kernel
// would flush in the background). The fuzzer found the divergence with
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
