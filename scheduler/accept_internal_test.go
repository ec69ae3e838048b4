package scheduler

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/backends/netpoll"
)

// TestAcceptBacksOffOnEMFILE: while accept(2) fails with EMFILE (made to,
// here), Accept neither returns the error nor spins: it retries after
// growing delays (5 ms, doubling). Once descriptors are free, the
// connection waiting in the backlog is accepted and works, the next
// Accept does not inherit the delay, and Close still releases an Accept
// that is backing off.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	var calls atomic.Int32
	var exhausted atomic.Bool
	exhausted.Store(true)
	acceptFn = func(s int) (int, unix.Sockaddr, error) {
		calls.Add(1)
		if exhausted.Load() {
			return -1, nil, syscall.EMFILE
		}
		return sysAccept(s)
	}
	t.Cleanup(func() { acceptFn = sysAccept })

	l, err := netpoll.New()
	require.NoError(t, err)
	h, err := New(l)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	type res struct {
		c   net.Conn
		err error
	}
	accept := func() <-chan res {
		ch := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			ch <- res{c, err}
		}()
		return ch
	}
	ch := accept()
	client, err := net.Dial("tcp", ln.Addr().String()) // queued in the backlog
	require.NoError(t, err)
	defer client.Close()

	// 5+10+20+40+80+160 ms: about 7 attempts in 300 ms; a loop that spun
	// would make thousands. (A slow machine makes fewer, never more.)
	time.Sleep(300 * time.Millisecond)
	n := calls.Load()
	assert.GreaterOrEqual(t, n, int32(3), "attempts in 300 ms of EMFILE: it must retry")
	assert.LessOrEqual(t, n, int32(12), "attempts in 300 ms of EMFILE: it must back off, not spin")
	select {
	case r := <-ch:
		t.Fatalf("Accept returned (%v, %v) while accept(2) failed with EMFILE; it must wait", r.c, r.err)
	default:
	}

	exhausted.Store(false) // descriptors are free again
	var r res
	select {
	case r = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not take the queued connection once descriptors were free")
	}
	require.NoError(t, r.err)
	defer r.c.Close()
	_, err = client.Write([]byte("ping"))
	require.NoError(t, err)
	require.NoError(t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4)
	_, err = io.ReadFull(r.c, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))

	// The next Accept starts without a delay.
	ch = accept()
	client2, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client2.Close()
	select {
	case r = <-ch:
		require.NoError(t, r.err)
		r.c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("Accept after the descriptors came back did not return")
	}

	// Close releases an Accept that is backing off.
	exhausted.Store(true)
	ch = accept()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, ln.Close())
	select {
	case r = <-ch:
		assert.ErrorIs(t, r.err, net.ErrClosed, "Accept backing off, released by Close")
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release an Accept backing off on EMFILE")
	}
}
