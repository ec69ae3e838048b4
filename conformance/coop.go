package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// TestCooperative runs the cooperative-task cases (gevent's greenlets on a
// hub: hub.Go, Sleep, sockets and the hub-aware primitives from inside
// tasks) against fresh hubs from open. Subtests are "coop/Case", and
// "blocking/Case" for what keeps a task from freezing its hub (lookups,
// Blocking, fd waits, hub files, subprocesses; coop_blocking.go).
//
// Inside a task a case never calls t.FailNow (require): like a goroutine
// that is not the test's, a task must not Goexit; checks are returned as
// the task's error and asserted outside.
func TestCooperative(t *testing.T, open func() (*scheduler.Hub, error)) {
	areas := []struct {
		name  string
		cases []coopCase
	}{{"coop", coopCases()}, {"blocking", blockingCases()}}
	for _, area := range areas {
		for _, c := range area.cases {
			t.Run(area.name+"/"+c.name, func(t *testing.T) {
				h, err := open()
				require.NoError(t, err)
				defer func() { require.NoError(t, h.Close()) }()
				c.run(t, h)
			})
		}
	}
}

type coopCase struct {
	name string
	run  func(t *testing.T, h *scheduler.Hub)
}

// spawn starts fn as a task and fails t if that is refused.
func spawn(t *testing.T, h *scheduler.Hub, fn func(ctx context.Context) error) *scheduler.Task {
	t.Helper()
	task, err := h.Go(fn)
	require.NoError(t, err)
	return task
}

// join waits (bounded) for a task and returns its error.
func join(t *testing.T, task *scheduler.Task) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := task.Wait(ctx)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "task did not finish in 20s")
	return err
}

func coopListen(t *testing.T, h *scheduler.Hub) net.Listener {
	t.Helper()
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// stdPair is a hub-accepted conn and its standard-library peer: the hub
// side works on every backend, dialing or not.
func stdPair(t *testing.T, h *scheduler.Hub) (hubSide net.Conn, peer net.Conn) {
	t.Helper()
	ln := coopListen(t, h)
	peer, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	hubSide, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { hubSide.Close(); peer.Close() })
	return hubSide, peer
}

func coopCases() []coopCase {
	return []coopCase{
		{"SerialSharedStateAndFairness", coopSerial},
		{"SleepOrderAndNeverEarly", coopSleep},
		{"EchoTaskPerConnection", coopEcho},
		{"CancelUnblocksRead", func(t *testing.T, h *scheduler.Hub) {
			c, _ := stdPair(t, h)
			coopCancel(t, h, func(ctx context.Context) error {
				_, err := c.Read(make([]byte, 1))
				return err
			})
		}},
		{"CancelUnblocksAccept", func(t *testing.T, h *scheduler.Hub) {
			ln := coopListen(t, h)
			coopCancel(t, h, func(ctx context.Context) error {
				_, err := ln.Accept()
				return err
			})
		}},
		{"CancelUnblocksQueueGet", func(t *testing.T, h *scheduler.Hub) {
			q, err := scheduler.NewQueue[int](1)
			require.NoError(t, err)
			coopCancel(t, h, func(ctx context.Context) error {
				_, err := q.Get(ctx)
				return err
			})
		}},
		{"CancelUnblocksSleep", func(t *testing.T, h *scheduler.Hub) {
			coopCancel(t, h, func(ctx context.Context) error { return h.Sleep(time.Hour) })
		}},
		{"ReadDeadlineInTask", coopDeadline},
		{"Event", coopEvent},
		{"Queue", coopQueue},
		{"AsyncResult", coopAsyncResult},
		{"GroupFirstErrorCancelsRest", coopGroup},
		{"GroupLimit", coopGroupLimit},
		{"Thousands", coopThousands},
		{"PanicBecomesError", coopPanic},
		{"BadInput", coopBadInput},
		{"MonitorReportsBlockingTask", coopMonitor},
	}
}

// Tasks share a plain int and slice with no lock: under -race any
// parallelism is a reported race. Sleep(0) yields; the run queue is FIFO,
// so once all tasks exist every task takes one step per round.
func coopSerial(t *testing.T, h *scheduler.Hub) {
	const tasks, steps = 200, 50
	counter := 0
	var order []int
	// A spawner task creates them all before any runs: none can run until
	// the spawner yields.
	var ts []*scheduler.Task
	spawner := spawn(t, h, func(ctx context.Context) error {
		for i := 0; i < tasks; i++ {
			task, err := h.Go(func(ctx context.Context) error {
				for s := 0; s < steps; s++ {
					counter++
					order = append(order, i)
					if err := h.Sleep(0); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			ts = append(ts, task)
		}
		return nil
	})
	require.NoError(t, join(t, spawner))
	for _, task := range ts {
		require.NoError(t, join(t, task))
	}
	require.Equal(t, tasks*steps, counter, "no increment lost")
	require.Len(t, order, tasks*steps)
	for r := 0; r < steps; r++ {
		seen := make(map[int]bool, tasks)
		for _, id := range order[r*tasks : (r+1)*tasks] {
			seen[id] = true
		}
		require.Len(t, seen, tasks, "round %d: every task takes exactly one step per round", r)
	}
}

func coopSleep(t *testing.T, h *scheduler.Hub) {
	var mu sync.Mutex
	var woke []time.Duration
	start := time.Now()
	var ts []*scheduler.Task
	for _, d := range []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond} {
		ts = append(ts, spawn(t, h, func(ctx context.Context) error {
			t0 := time.Now()
			if err := h.Sleep(d); err != nil {
				return err
			}
			if el := time.Since(t0); el < d {
				return fmt.Errorf("Sleep(%v) returned after %v: early", d, el)
			}
			mu.Lock()
			woke = append(woke, d)
			mu.Unlock()
			return nil
		}))
	}
	for _, task := range ts {
		require.NoError(t, join(t, task))
	}
	require.Equal(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond}, woke)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
}

// A task-per-connection echo server, gevent style, with goroutine clients
// on the standard library.
func coopEcho(t *testing.T, h *scheduler.Hub) {
	ln := coopListen(t, h)
	const clients, rounds = 20, 50
	srv := spawn(t, h, func(ctx context.Context) error {
		for i := 0; i < clients; i++ {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			if _, err := h.Go(func(ctx context.Context) error {
				defer c.Close()
				_, err := io.Copy(c, c)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			msg := []byte(fmt.Sprintf("client %02d says hi", i))
			buf := make([]byte, len(msg))
			for r := 0; r < rounds; r++ {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
				if string(buf) != string(msg) {
					errs <- fmt.Errorf("client %d got %q", i, buf)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, join(t, srv))
}

// coopCancel starts a task blocked in block, cancels it, and requires that
// the task returns the context's error promptly.
func coopCancel(t *testing.T, h *scheduler.Hub, block func(ctx context.Context) error) {
	started := make(chan struct{})
	task := spawn(t, h, func(ctx context.Context) error {
		close(started)
		return block(ctx)
	})
	<-started
	time.Sleep(20 * time.Millisecond) // let it block
	require.False(t, task.Done(), "the task should still be blocked")
	task.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := task.Wait(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func coopDeadline(t *testing.T, h *scheduler.Hub) {
	c, _ := stdPair(t, h)
	task := spawn(t, h, func(ctx context.Context) error {
		t0 := time.Now() // before the deadline is computed, so "early" is never a few µs of setting it
		if err := c.SetReadDeadline(t0.Add(30 * time.Millisecond)); err != nil {
			return err
		}
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("Read error %v, want os.ErrDeadlineExceeded", err)
		}
		if el := time.Since(t0); el < 30*time.Millisecond {
			return fmt.Errorf("deadline fired after %v: early", el)
		}
		return nil
	})
	require.NoError(t, join(t, task))
}

func coopEvent(t *testing.T, h *scheduler.Hub) {
	var ev scheduler.Event
	var woken atomic.Int32
	var ts []*scheduler.Task
	for i := 0; i < 10; i++ {
		ts = append(ts, spawn(t, h, func(ctx context.Context) error {
			if err := ev.Wait(ctx); err != nil {
				return err
			}
			woken.Add(1)
			return nil
		}))
	}
	// A goroutine waits too.
	gdone := make(chan error, 1)
	go func() { gdone <- ev.Wait(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	require.Zero(t, woken.Load())
	require.False(t, ev.IsSet())
	ev.Set()
	for _, task := range ts {
		require.NoError(t, join(t, task))
	}
	require.NoError(t, <-gdone)
	require.EqualValues(t, 10, woken.Load())
	require.True(t, ev.IsSet())
	ev.Clear()
	require.False(t, ev.IsSet())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.ErrorIs(t, ev.Wait(ctx), context.Canceled)
	require.Less(t, time.Since(start), time.Second, "an already-cancelled Wait returns at once")
}

func coopQueue(t *testing.T, h *scheduler.Hub) {
	q, err := scheduler.NewQueue[int](2)
	require.NoError(t, err)
	const n = 100
	producer := spawn(t, h, func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			if err := q.Put(ctx, i); err != nil {
				return err
			}
			if q.Len() > q.Cap() {
				return fmt.Errorf("queue holds %d > capacity %d", q.Len(), q.Cap())
			}
		}
		q.Close()
		return nil
	})
	// The consumer is a goroutine: primitives work across both.
	var got []int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := q.Get(ctx)
		cancel()
		if errors.Is(err, scheduler.ErrQueueClosed) {
			break
		}
		require.NoError(t, err)
		got = append(got, v)
	}
	require.NoError(t, join(t, producer))
	require.Len(t, got, n)
	for i, v := range got {
		require.Equal(t, i, v, "FIFO order")
	}
	require.ErrorIs(t, q.Put(context.Background(), 1), scheduler.ErrQueueClosed)
	_, err = scheduler.NewQueue[int](0)
	require.Error(t, err)
}

func coopAsyncResult(t *testing.T, h *scheduler.Hub) {
	var r scheduler.AsyncResult[string]
	task := spawn(t, h, func(ctx context.Context) error {
		v, err := r.Get(ctx)
		if err != nil {
			return err
		}
		if v != "done" {
			return fmt.Errorf("got %q", v)
		}
		return nil
	})
	time.Sleep(10 * time.Millisecond)
	require.False(t, r.Ready())
	require.NoError(t, r.Set("done"))
	require.ErrorIs(t, r.Set("again"), scheduler.ErrAlreadySet)
	require.NoError(t, join(t, task))
	v, err := r.Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, "done", v)

	var e scheduler.AsyncResult[int]
	boom := errors.New("boom")
	require.NoError(t, e.SetError(boom))
	_, err = e.Get(context.Background())
	require.ErrorIs(t, err, boom)
}

func coopGroup(t *testing.T, h *scheduler.Hub) {
	g := h.NewGroup(context.Background(), 0)
	boom := errors.New("boom")
	var cancelled atomic.Int32
	for i := 0; i < 5; i++ {
		require.NoError(t, g.Go(func(ctx context.Context) error {
			if err := h.Sleep(time.Hour); err != nil {
				cancelled.Add(1)
				return err
			}
			return nil
		}))
	}
	require.NoError(t, g.Go(func(ctx context.Context) error {
		if err := h.Sleep(10 * time.Millisecond); err != nil {
			return err
		}
		return boom
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.ErrorIs(t, g.Wait(ctx), boom, "Wait returns the first error")
	require.EqualValues(t, 5, cancelled.Load(), "the first error cancels the rest")
}

func coopGroupLimit(t *testing.T, h *scheduler.Hub) {
	const limit = 3
	var running, peak atomic.Int32
	g := h.NewGroup(context.Background(), limit)
	spawner := spawn(t, h, func(ctx context.Context) error {
		for i := 0; i < 20; i++ {
			if err := g.Go(func(ctx context.Context) error {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				defer running.Add(-1)
				return h.Sleep(2 * time.Millisecond)
			}); err != nil {
				return err
			}
		}
		return g.Wait(ctx)
	})
	require.NoError(t, join(t, spawner))
	require.LessOrEqual(t, peak.Load(), int32(limit))
	require.EqualValues(t, limit, peak.Load(), "the limit is reached")
}

func coopThousands(t *testing.T, h *scheduler.Hub) {
	const n = 5000
	var done atomic.Int32
	g := h.NewGroup(context.Background(), 0)
	for i := 0; i < n; i++ {
		require.NoError(t, g.Go(func(ctx context.Context) error {
			if err := h.Sleep(time.Millisecond); err != nil {
				return err
			}
			done.Add(1)
			return nil
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, g.Wait(ctx))
	require.EqualValues(t, n, done.Load())
}

func coopPanic(t *testing.T, h *scheduler.Hub) {
	task := spawn(t, h, func(ctx context.Context) error { panic("kaboom") })
	err := join(t, task)
	var pe *scheduler.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "kaboom", pe.Value)
	require.Contains(t, string(pe.Stack), "coopPanic", "the error carries the task's stack")
	// The hub survives.
	require.NoError(t, join(t, spawn(t, h, func(ctx context.Context) error { return h.Sleep(time.Millisecond) })))
}

func coopBadInput(t *testing.T, h *scheduler.Hub) {
	_, err := h.Go(nil)
	require.ErrorIs(t, err, scheduler.ErrNilFunc)
	task := spawn(t, h, func(ctx context.Context) error { return h.Sleep(time.Hour) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.ErrorIs(t, task.Wait(ctx), context.Canceled)
	require.Less(t, time.Since(start), time.Second)
	task.Cancel()
	require.ErrorIs(t, join(t, task), context.Canceled)

	l, err := loop.Open(h.Backend())
	require.NoError(t, err)
	h2, err := scheduler.New(l)
	require.NoError(t, err)
	require.NoError(t, h2.Close())
	_, err = h2.Go(func(ctx context.Context) error { return nil })
	require.ErrorIs(t, err, net.ErrClosed, "Go on a closed hub")
	assert.ErrorIs(t, err, scheduler.ErrHubClosed)
}

// blockTheHub is a task that wrongly blocks its thread: the monitor must
// name it.
func blockTheHub(ctx context.Context) error {
	time.Sleep(300 * time.Millisecond)
	return nil
}

func coopMonitor(t *testing.T, h *scheduler.Hub) {
	reports := make(chan scheduler.MonitorReport, 4)
	require.NoError(t, h.StartMonitor(100*time.Millisecond, func(r scheduler.MonitorReport) { reports <- r }))
	require.Error(t, h.StartMonitor(100*time.Millisecond, nil), "a second monitor is refused")
	// A well-behaved task that waits through the hub is never reported.
	require.NoError(t, join(t, spawn(t, h, func(ctx context.Context) error { return h.Sleep(300 * time.Millisecond) })))
	select {
	case r := <-reports:
		t.Fatalf("a hub-aware Sleep was reported: %v", r)
	default:
	}
	require.NoError(t, join(t, spawn(t, h, blockTheHub)))
	select {
	case r := <-reports:
		require.GreaterOrEqual(t, r.Blocked, 100*time.Millisecond)
		require.Contains(t, r.Stack, "blockTheHub", "the report carries the offending task's stack")
	case <-time.After(5 * time.Second):
		t.Fatal("the monitor did not report a task that blocked the hub for 300ms")
	}
	select {
	case r := <-reports:
		t.Fatalf("one stall was reported twice: %v", r)
	default:
	}
}
