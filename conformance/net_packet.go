package conformance

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// packetCases are the semantics of packet conns, run over udp and
// unixgram.
func netPacketCases() []netCase {
	var cs []netCase
	for _, nw := range []string{"udp", "unixgram"} {
		add := func(name string, run func(t *testing.T, e *env)) {
			cs = append(cs, netCase{area: nw, name: name, run: run})
		}
		add("Addrs", func(t *testing.T, e *env) { packetAddrs(t, e, nw) })
		add("Boundaries", func(t *testing.T, e *env) { packetBoundaries(t, e, nw) })
		add("Truncation", func(t *testing.T, e *env) { packetTruncation(t, e, nw) })
		add("Reply", func(t *testing.T, e *env) { packetReply(t, e, nw) })
		add("ReadDeadline", func(t *testing.T, e *env) { packetReadDeadline(t, e, nw) })
		add("Dial", func(t *testing.T, e *env) { packetDial(t, e, nw) })
	}
	return cs
}

func packetAddrs(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	std, got := e.sides()
	type obs struct{ local, peer, src net.Addr }
	observe := func(s *side) obs {
		a, b := s.listenPacket(nw), s.listenPacket(nw)
		_, err := a.WriteTo([]byte("x"), b.LocalAddr())
		require.NoError(t, err, "%s: WriteTo", s.name)
		require.NoError(t, b.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, src, err := b.ReadFrom(make([]byte, 4))
		require.NoError(t, err, "%s: ReadFrom", s.name)
		return obs{a.LocalAddr(), b.LocalAddr(), src}
	}
	ref, g := observe(std), observe(got)
	sameAddr(t, "LocalAddr()", std, got, ref.local, g.local)
	sameAddr(t, "ReadFrom source address", std, got, ref.src, g.src)
	want := addrType(nw)
	assert.Equal(t, want, fmt.Sprintf("%T", g.local), "LocalAddr type")
	assert.Equal(t, want, fmt.Sprintf("%T", g.src), "ReadFrom source address type")
	if g.src != nil {
		assert.Equal(t, g.local.String(), g.src.String(), "ReadFrom source is the sender's LocalAddr")
	}
}

// datagramSizes exercise empty, small, MTU-sized and near-maximum
// datagrams; order is kept on loopback.
var datagramSizes = []int{0, 1, 100, 1000, 1472, 8000, 60000, 3, 0, 65000, 7}

func packetBoundaries(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	s := e.net()
	a, b := s.listenPacket(nw), s.listenPacket(nw)
	require.NoError(t, a.SetDeadline(time.Now().Add(20*time.Second)))
	require.NoError(t, b.SetDeadline(time.Now().Add(20*time.Second)))
	pt := newPattern(4)
	// The writer runs apart: a unixgram receive queue can fill and make
	// WriteTo wait for the reader.
	wr := goErr(func() error {
		for i, size := range datagramSizes {
			msg := make([]byte, size)
			pt.fill(int64(i)*100_000, msg)
			n, err := a.WriteTo(msg, b.LocalAddr())
			if err != nil {
				return fmt.Errorf("WriteTo datagram %d (%d bytes): %w", i, size, err)
			}
			if n != size {
				return fmt.Errorf("WriteTo datagram %d: wrote %d of %d bytes", i, n, size)
			}
		}
		return nil
	})
	buf := make([]byte, 70000)
	want := make([]byte, 70000)
	for i, size := range datagramSizes {
		n, src, err := b.ReadFrom(buf)
		require.NoError(t, err, "ReadFrom datagram %d", i)
		require.Equal(t, size, n, "datagram %d: one ReadFrom returns exactly one whole datagram", i)
		pt.fill(int64(i)*100_000, want[:size])
		require.True(t, bytes.Equal(want[:size], buf[:n]), "datagram %d: content", i)
		require.NotNil(t, src, "datagram %d: source address", i)
		assert.Equal(t, a.LocalAddr().String(), src.String(), "datagram %d: source address", i)
	}
	require.NoError(t, waitFor(t, wr, 20*time.Second, "writer"))
}

func packetTruncation(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	std, got := e.sides()
	observe := func(s *side) string {
		a, b := s.listenPacket(nw), s.listenPacket(nw)
		require.NoError(t, b.SetReadDeadline(time.Now().Add(5*time.Second)))
		for _, m := range []string{"0123456789abcdefghijklmnopqrstuvwxyz", "short"} {
			_, err := a.WriteTo([]byte(m), b.LocalAddr())
			require.NoError(t, err, "%s: WriteTo", s.name)
		}
		small := make([]byte, 10)
		n1, _, err1 := b.ReadFrom(small)
		first := string(small[:n1])
		big := make([]byte, 100)
		n2, _, err2 := b.ReadFrom(big)
		return fmt.Sprintf("first ReadFrom into 10 bytes: n=%d %q err=%v; next ReadFrom: n=%d %q err=%v",
			n1, first, s.norm(fmt.Sprint(err1)), n2, big[:n2], s.norm(fmt.Sprint(err2)))
	}
	ref := observe(std)
	require.Contains(t, ref, `"short"`, "std: the rest of a truncated datagram is discarded: the case is wrong")
	assert.Equal(t, ref, observe(got), "truncating a datagram to a small buffer differs from the standard library")
}

func packetReply(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	s := e.net()
	a, b := s.listenPacket(nw), s.listenPacket(nw)
	require.NoError(t, a.SetDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, b.SetDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 64)
	for i := range 20 {
		msg := fmt.Sprintf("request %d", i)
		_, err := a.WriteTo([]byte(msg), b.LocalAddr())
		require.NoError(t, err)
		n, src, err := b.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, msg, string(buf[:n]))
		// Reply to the address ReadFrom reported.
		_, err = b.WriteTo([]byte("re: "+msg), src)
		require.NoError(t, err, "WriteTo the source address ReadFrom returned")
		n, src, err = a.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "re: "+msg, string(buf[:n]))
		require.Equal(t, b.LocalAddr().String(), src.String())
	}
}

func packetReadDeadline(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	s := e.net()
	a, b := s.listenPacket(nw), s.listenPacket(nw)
	buf := make([]byte, 16)

	// Not early, and a timeout error.
	dl := time.Now().Add(50 * time.Millisecond)
	require.NoError(t, b.SetReadDeadline(dl))
	_, _, err := b.ReadFrom(buf)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assertTimeout(t, err)
	assert.False(t, time.Now().Before(dl), "ReadFrom returned before its deadline")

	// A past deadline fails even with a datagram waiting.
	_, err = a.WriteTo([]byte("queued"), b.LocalAddr())
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	_, _, err = b.ReadFrom(buf)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "ReadFrom with a past deadline and a datagram queued")

	// Zero clears it: the queued datagram is read.
	require.NoError(t, b.SetReadDeadline(time.Time{}))
	n, _, err := b.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, "queued", string(buf[:n]))

	// Extending while blocked: a ReadFrom due to time out at 100ms is
	// extended, and then satisfied by a datagram sent at 300ms.
	for attempt := 1; ; attempt++ {
		start := time.Now()
		dl := start.Add(100 * time.Millisecond)
		require.NoError(t, b.SetReadDeadline(dl))
		type res struct {
			n   int
			err error
		}
		ch := make(chan res, 1)
		go func() {
			n, _, err := b.ReadFrom(buf)
			ch <- res{n, err}
		}()
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, b.SetReadDeadline(time.Now().Add(10*time.Second)))
		changed := time.Now()
		time.Sleep(280 * time.Millisecond)
		_, err = a.WriteTo([]byte("late"), b.LocalAddr())
		require.NoError(t, err)
		r := waitFor(t, ch, 10*time.Second, "ReadFrom with an extended deadline")
		if starvedRound(t, attempt, changed, dl, r.err) {
			_, _, err := b.ReadFrom(buf) // the datagram sent for that round
			require.NoError(t, err)
			continue
		}
		require.NoError(t, r.err, "ReadFrom whose deadline was extended while it was blocked")
		assert.Equal(t, "late", string(buf[:r.n]))
		assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
		return
	}
}

// assertTimeout checks err is a net.Error whose Timeout is true.
func assertTimeout(t *testing.T, err error) {
	t.Helper()
	ne, ok := err.(net.Error)
	if assert.True(t, ok, "%v (%T) is not a net.Error", err, err) {
		assert.True(t, ne.Timeout(), "%v: Timeout() is false", err)
	}
}

func packetDial(t *testing.T, e *env, nw string) {
	e.needsPacket(nw)
	e.needsDial()
	std, got := e.sides()
	type obs struct {
		local, remote, src net.Addr
		reply              string
	}
	observe := func(s *side) obs {
		pc := s.listenPacket(nw)
		c, err := s.n.Dial(nw, pc.LocalAddr().String())
		require.NoError(t, err, "%s: Dial(%q)", s.name, nw)
		s.e.track(c)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		require.NoError(t, pc.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = c.Write([]byte("hello"))
		require.NoError(t, err, "%s: Write on a dialed %s conn", s.name, nw)
		buf := make([]byte, 16)
		n, src, err := pc.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "hello", string(buf[:n]))
		o := obs{local: c.LocalAddr(), remote: c.RemoteAddr(), src: src}
		if src != nil { // an unbound unixgram sender cannot be answered
			_, err = pc.WriteTo([]byte("back"), src)
			require.NoError(t, err)
			n, err = c.Read(buf)
			require.NoError(t, err, "%s: Read on a dialed %s conn", s.name, nw)
			o.reply = string(buf[:n])
		}
		return o
	}
	ref, g := observe(std), observe(got)
	sameAddr(t, "dialed LocalAddr()", std, got, ref.local, g.local)
	sameAddr(t, "dialed RemoteAddr()", std, got, ref.remote, g.remote)
	sameAddr(t, "ReadFrom source of a dialed conn", std, got, ref.src, g.src)
	assert.Equal(t, ref.reply, g.reply, "reply read on the dialed conn")
	assert.Equal(t, addrType(nw), fmt.Sprintf("%T", g.remote), "dialed RemoteAddr type")
}
