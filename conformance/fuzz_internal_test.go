package conformance

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReadFromPeerSkipsStrays: rule 8 — a datagram from a third address
// is skipped and counted; the peer's comes through.
func TestReadFromPeerSkipsStrays(t *testing.T) {
	a, b, third := &fuzzEnd{pc: listenUDP(t)}, &fuzzEnd{pc: listenUDP(t)}, listenUDP(t)
	require.NoError(t, a.pc.SetReadDeadline(time.Now().Add(5*time.Second)))

	_, err := third.WriteTo([]byte("stray"), a.pc.LocalAddr())
	require.NoError(t, err)
	// Loopback delivers in order: the stray is queued before the peer's.
	_, err = b.pc.WriteTo([]byte("peer"), a.pc.LocalAddr())
	require.NoError(t, err)

	before := StrayDatagrams()
	buf := make([]byte, 64)
	n, from, err := readFromPeer(a, b, buf)
	require.NoError(t, err)
	require.Equal(t, "peer", string(buf[:n]))
	require.Equal(t, b.pc.LocalAddr().String(), from.String())
	require.Equal(t, before+1, StrayDatagrams())
}

// TestDropStraysBeforeRead: rule 8 for a Read on an unconnected socket,
// which cannot tell a datagram's source: strays queued before the peer's
// datagram are dropped, the peer's stays to be read.
func TestDropStraysBeforeRead(t *testing.T) {
	a, b, third := &fuzzEnd{pc: listenUDP(t)}, &fuzzEnd{pc: listenUDP(t)}, listenUDP(t)
	require.NoError(t, a.pc.SetReadDeadline(time.Now().Add(5*time.Second)))
	for _, p := range []string{"stray", ""} { // a 0-byte stray too
		_, err := third.WriteTo([]byte(p), a.pc.LocalAddr())
		require.NoError(t, err)
	}
	_, err := b.pc.WriteTo([]byte("peer"), a.pc.LocalAddr())
	require.NoError(t, err)

	before := StrayDatagrams()
	dropStrays(a, b)
	require.Equal(t, before+2, StrayDatagrams())
	buf := make([]byte, 64)
	n, err := a.pc.(*net.UDPConn).Read(buf)
	require.NoError(t, err)
	require.Equal(t, "peer", string(buf[:n]))
	dropStrays(a, b) // nothing queued: returns at once
	require.Equal(t, before+2, StrayDatagrams())
}

// listenUDP is a udp socket on 127.0.0.1, closed when the test ends.
func listenUDP(t *testing.T) net.PacketConn {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}
