package conformance

import (
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

// Teardown cases: how a connection ends — resets, half-closes, closing
// with bytes unread — observed step by step on the standard library and
// on the network under test, and compared as transcripts. A loop that
// reads ahead of the application (one that owns its sockets and pulls
// bytes out of the kernel before a Read asks for them) is where these
// drift: the kernel no longer sees the bytes as unread.
func netTeardownCases() []netCase {
	var cs []netCase
	add := func(area, name string, run func(t *testing.T, e *env)) {
		cs = append(cs, netCase{area: area, name: name, run: run})
	}
	for _, nw := range []string{"tcp", "unix"} {
		sfx := title(nw)
		add("close", "UnreadAfterReadResets"+sfx, func(t *testing.T, e *env) { tdUnreadAfterRead(t, e, nw) })
		add("close", "PeerClosesUnreadResets"+sfx, func(t *testing.T, e *env) { tdPeerClosesUnread(t, e, nw) })
		add("close", "ResetOnceThenEOF"+sfx, func(t *testing.T, e *env) { tdResetOnce(t, e, nw) })
		add("close", "CloseAfterCloseWriteReleases"+sfx, func(t *testing.T, e *env) { tdCloseAfterCloseWrite(t, e, nw) })
		add("errors", "CloseWriteTwice"+sfx, func(t *testing.T, e *env) { tdCloseWriteTwice(t, e, nw) })
	}
	return cs
}

// transcript records the outcome of each step of a sequence, in a form
// that compares between the two sides (errors as describeErr shows them).
type transcript struct {
	s     *side
	steps []string
}

func (tr *transcript) io(what string, n int, err error) {
	tr.steps = append(tr.steps, fmt.Sprintf("%s: n=%d err=%s", what, n, strings.Join(describeErr(err, tr.s.norm), "; ")))
}

func (tr *transcript) err(what string, err error) { tr.io(what, 0, err) }

// compareTranscripts runs observe on both sides and fails t unless the
// transcripts are equal. check validates the reference's transcript (that
// the case provokes what it claims to).
func compareTranscripts(t *testing.T, e *env, what string, observe func(s *side, tr *transcript), check func(ref []string)) {
	t.Helper()
	std, got := e.sides()
	ref, gt := &transcript{s: std}, &transcript{s: got}
	observe(std, ref)
	check(ref.steps)
	observe(got, gt)
	assert.Equal(t, ref.steps, gt.steps, "%s: differs from the standard library", what)
}

// requireStep fails t unless step i of a reference transcript mentions
// each of want (the case is wrong otherwise).
func requireStep(t *testing.T, ref []string, i int, want ...string) {
	t.Helper()
	require.Greater(t, len(ref), i, "std transcript too short: the case is wrong")
	for _, w := range want {
		require.Contains(t, ref[i], w, "std step %d: the case is wrong", i)
	}
}

const (
	isReset = "errors.Is(syscall.ECONNRESET) = true"
	isEOF   = "errors.Is(io.EOF) = true"
	isEPIPE = "errors.Is(syscall.EPIPE) = true"
	noErr   = "err=<nil>"
)

// tdUnreadAfterRead: the conn reads part of what the peer sent, then
// closes with the rest unread. net resets the connection (the kernel
// holds unread bytes), so the peer's Read fails with ECONNRESET, then
// reads io.EOF — even though the conn had already read once, and a loop
// may have pulled the rest into user space by then (48 KiB: one read of
// a loop that reads 64 KiB at a time takes all of it).
//
// On unix, a loop that reads ahead cannot reset (see
// loop.CapUnixUnreadReset); a network that declares so must show exactly
// that difference (io.EOF in place of ECONNRESET), and the case is n/a.
func tdUnreadAfterRead(t *testing.T, e *env, nw string) {
	const total, first = 48 << 10, 1 << 10
	const resetStep = 2
	observe := func(s *side, tr *transcript) {
		c, peer, _ := s.conns(nw)
		for _, x := range []net.Conn{c, peer} {
			require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
		}
		pt := newPattern(21)
		require.NoError(t, pt.write(peer, total, total), "%s: peer writing 48 KiB", s.name)
		waitQueued(t, c)
		n, err := io.ReadFull(c, make([]byte, first))
		tr.io("conn reads 1 KiB", n, err)
		tr.err("conn Close", c.Close())
		n, err = peer.Read(make([]byte, 64))
		tr.io("peer Read", n, err)
		n, err = peer.Read(make([]byte, 64))
		tr.io("peer Read again", n, err)
	}
	check := func(ref []string) {
		requireStep(t, ref, resetStep, isReset)
		requireStep(t, ref, resetStep+1, isEOF)
	}
	if isUnix(nw) && !loop.Supports(e.n, loop.CapUnixUnreadReset) {
		e.requireUnsupported(loop.CapUnixUnreadReset, func() error {
			std, got := e.sides()
			ref, gt := &transcript{s: std}, &transcript{s: got}
			observe(std, ref)
			check(ref.steps)
			observe(got, gt)
			want := append([]string(nil), ref.steps...)
			want[resetStep] = gt.steps[resetStep] // the declared difference
			if !strings.Contains(gt.steps[resetStep], isEOF) || !assert.ObjectsAreEqual(want, gt.steps) {
				if assert.ObjectsAreEqual(ref.steps, gt.steps) {
					return nil // it resets after all
				}
				return fmt.Errorf("differs from the standard library beyond the declared difference:\n std: %q\n net: %q", ref.steps, gt.steps)
			}
			return &loop.UnsupportedError{Backend: "network under test", Capability: loop.CapUnixUnreadReset,
				Reason: "the peer read io.EOF where net's reads ECONNRESET"}
		})
	}
	compareTranscripts(t, e, "Close with unread bytes after a first Read", observe, check)
}

// tdPeerClosesUnread: both ends write, then the peer closes with the
// conn's bytes unread. net's next Reads on the conn (tcp): the peer's
// bytes, then ECONNRESET, then io.EOF.
func tdPeerClosesUnread(t *testing.T, e *env, nw string) {
	compareTranscripts(t, e, "Read after the peer closed with the conn's bytes unread", func(s *side, tr *transcript) {
		c, peer, _ := s.conns(nw)
		for _, x := range []net.Conn{c, peer} {
			require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
		}
		n, err := peer.Write([]byte("request"))
		tr.io("peer Write", n, err)
		waitQueued(t, c)
		n, err = c.Write([]byte("response"))
		tr.io("conn Write", n, err)
		waitQueued(t, peer)
		tr.err("peer Close", peer.Close())
		buf := make([]byte, 64)
		for i := range 3 {
			n, err = c.Read(buf)
			tr.io(fmt.Sprintf("conn Read %d", i+1), n, err)
		}
	}, func(ref []string) {
		if nw == "tcp" {
			requireStep(t, ref, 3, "n=7", noErr)
			requireStep(t, ref, 4, isReset)
			requireStep(t, ref, 5, isEOF)
		}
	})
}

// tdResetOnce: after the peer reset the connection (it closed with bytes
// unread), net reports ECONNRESET on one Read and io.EOF on every Read
// after it.
func tdResetOnce(t *testing.T, e *env, nw string) {
	compareTranscripts(t, e, "Reads after a reset", func(s *side, tr *transcript) {
		c, peer, _ := s.conns(nw)
		for _, x := range []net.Conn{c, peer} {
			require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
		}
		n, err := c.Write([]byte("never read"))
		tr.io("conn Write", n, err)
		waitQueued(t, peer)
		tr.err("peer Close", peer.Close())
		buf := make([]byte, 64)
		for i := range 3 {
			n, err = c.Read(buf)
			tr.io(fmt.Sprintf("conn Read %d", i+1), n, err)
		}
	}, func(ref []string) {
		requireStep(t, ref, 2, isReset)
		requireStep(t, ref, 3, isEOF)
		requireStep(t, ref, 4, isEOF)
	})
}

// tdCloseAfterCloseWrite: the conn half-closes, the peer reads to EOF,
// the conn closes. When Close returns, the socket is gone: on unix the
// peer's next Write fails with EPIPE at once; on tcp it is answered with
// a reset, after which the peer's next Write fails with EPIPE (a socket
// released a little later, as evio's was, takes that Write's bytes
// instead and the Write after it succeeds). Run quiet, and
// with traffic both ways first (the conn's writes outrunning the kernel's
// buffers, the peer's bytes drained).
func tdCloseAfterCloseWrite(t *testing.T, e *env, nw string) {
	for _, traffic := range []bool{false, true} {
		what := fmt.Sprintf("the peer's Writes after Close following CloseWrite (traffic first: %v)", traffic)
		compareTranscripts(t, e, what, func(s *side, tr *transcript) {
			c, peer, _ := s.conns(nw)
			for _, x := range []net.Conn{c, peer} {
				require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
			}
			cw, ok := c.(closeWriter)
			require.True(t, ok, "%s: conn %T has no CloseWrite() error", s.name, c)
			wr := goErr(func() error {
				if traffic {
					if _, err := c.Write(make([]byte, 1<<20)); err != nil {
						return err
					}
				}
				return cw.CloseWrite()
			})
			b, err := io.ReadAll(peer)
			tr.io("peer reads to EOF", len(b), err)
			tr.err("conn CloseWrite", waitFor(t, wr, 10*time.Second, "conn writing"))
			if traffic {
				n, err := peer.Write([]byte("req"))
				tr.io("peer Write", n, err)
				n, err = io.ReadFull(c, make([]byte, 3))
				tr.io("conn drains it", n, err)
			}
			tr.err("conn Close", c.Close())
			n, err := peer.Write(make([]byte, 2917))
			tr.io("peer Writes after Close", n, err)
			if nw == "tcp" {
				// A socket closed when Close returned answers that Write
				// with a reset (awaited here, at most 1 s: softirqs run
				// late on a loaded machine), and the next Write fails;
				// one released later took the bytes, and the next Write
				// succeeds.
				waitHangup(peer, true, time.Second)
				n, err = peer.Write(make([]byte, 2917))
				tr.io("peer Writes again", n, err)
			}
		}, func(ref []string) {
			requireStep(t, ref, len(ref)-1, isEPIPE)
		})
	}
}

// tdCloseWriteTwice: a second CloseWrite, once the peer has closed too,
// returns what net's does: on tcp ENOTCONN, in a *net.OpError with Op
// "close"; on unix nil.
func tdCloseWriteTwice(t *testing.T, e *env, nw string) {
	compareTranscripts(t, e, "a second CloseWrite after the peer closed", func(s *side, tr *transcript) {
		c, peer, _ := s.conns(nw)
		for _, x := range []net.Conn{c, peer} {
			require.NoError(t, x.SetDeadline(time.Now().Add(10*time.Second)))
		}
		cw, ok := c.(closeWriter)
		require.True(t, ok, "%s: conn %T has no CloseWrite() error", s.name, c)
		tr.err("conn CloseWrite", cw.CloseWrite())
		b, err := io.ReadAll(peer)
		tr.io("peer reads to EOF", len(b), err)
		tr.err("peer Close", peer.Close())
		n, err := c.Read(make([]byte, 8))
		tr.io("conn reads the peer's EOF", n, err)
		tr.err("conn CloseWrite again", cw.CloseWrite())
		tr.err("conn CloseWrite a third time", cw.CloseWrite())
	}, func(ref []string) {
		requireStep(t, ref, 3, isEOF)
		if nw == "tcp" {
			requireStep(t, ref, 4, `Op="close"`, fmt.Sprintf("errno=%d", uintptr(syscall.ENOTCONN)))
		}
	})
}
