//go:build linux

package scheduler_test

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// openArmedHub is a hub in level mode on backend name (it arms each
// wait, as it does on uring and cev).
func openArmedHub(t *testing.T, name string) *scheduler.Hub {
	t.Helper()
	l, err := loop.Open(name)
	require.NoError(t, err)
	h, err := scheduler.New(levelOnly{l})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h
}

// TestDrainedReadWaitsFirst: on a hub that arms each wait, a Read after a
// short one waits for readiness instead of trying read(2) first, so an
// echo's ping-pong makes one read per round trip, not two (the second
// would say EAGAIN). Counted through the read hook.
func TestDrainedReadWaitsFirst(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openArmedHub(t, name)
			a, b := pair(t, h)
			var reads atomic.Int64
			fd := sysfd(t, a)
			scheduler.Faults.Set(scheduler.CallRead, func(got int) scheduler.Fault {
				if got == fd {
					reads.Add(1)
				}
				return scheduler.Fault{}
			})
			t.Cleanup(scheduler.Faults.Reset)
			require.NoError(t, a.SetDeadline(time.Now().Add(10*time.Second)))
			require.NoError(t, b.SetDeadline(time.Now().Add(10*time.Second)))
			const rounds = 200
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 4096)
				for range rounds {
					n, err := a.Read(buf)
					if err != nil {
						done <- err
						return
					}
					if _, err := a.Write(buf[:n]); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			msg, got := make([]byte, 64), make([]byte, 64)
			for range rounds {
				_, err := b.Write(msg)
				require.NoError(t, err)
				_, err = io.ReadFull(b, got)
				require.NoError(t, err)
			}
			require.NoError(t, <-done)
			// One read per round trip, plus the odd one where a wake-up
			// was spurious; two per round trip if each Read tried
			// read(2) first.
			require.LessOrEqual(t, reads.Load(), int64(rounds*3/2), "reads for %d round trips", rounds)
		})
	}
}

// TestShortReadLeavesBytes: a read that stops short while bytes remain
// (as a unix message carrying descriptors, or TCP's urgent mark, makes
// it) is followed by a Read that gets them, on a hub in either mode.
func TestShortReadLeavesBytes(t *testing.T) {
	for _, name := range backends() {
		for _, armed := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "/edge", true: "/armed"}[armed], func(t *testing.T) {
				h := openHub(t, name)
				if armed {
					h = openArmedHub(t, name)
				}
				a, b := pair(t, h)
				fd := sysfd(t, a)
				scheduler.Faults.Set(scheduler.CallRead, on(fd, scheduler.Fault{Short: 10}))
				t.Cleanup(scheduler.Faults.Reset)
				require.NoError(t, a.SetReadDeadline(time.Now().Add(5*time.Second)))
				// The Read parks first, so the readiness of the 100 bytes
				// is spent on its wake-up: nothing new arrives after it.
				type res struct {
					n   int
					err error
				}
				ch := make(chan res, 1)
				go func() {
					n, err := a.Read(make([]byte, 100))
					ch <- res{n, err}
				}()
				time.Sleep(20 * time.Millisecond)
				_, err := b.Write(make([]byte, 100))
				require.NoError(t, err)
				r := <-ch
				require.NoError(t, r.err)
				require.Equal(t, 10, r.n, "the read was cut short")
				scheduler.Faults.Reset()
				n, err := io.ReadFull(a, make([]byte, 90))
				require.NoError(t, err, "the bytes the short read left")
				require.Equal(t, 90, n)
			})
		}
	}
}
