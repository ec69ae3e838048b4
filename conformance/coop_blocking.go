package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/hubexec"
	"github.com/evhub/evhub/internal/fakedns"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// The "blocking" area: a task must never freeze its hub, whatever real
// programs do — look names up, call blocking functions, wait on fds, read
// pipes, run children. Every case checks liveness (another task of the
// same hub makes progress meanwhile), not speed: each is bounded in time,
// and the ordering it requires holds with a wide margin on a loaded
// machine. Cases that need the loop to watch arbitrary fds are "n/a" on a
// backend without loop.CapWatch, after checking that the operation fails
// with errors.ErrUnsupported there.
func blockingCases() []coopCase {
	return []coopCase{
		{"LookupsHangHubRuns", blockingLookupsHang},
		{"LookupsAnsweredLate", blockingLookupsLate},
		{"BlockingKeepsHubRunning", blockingHelper},
		{"HTTPGetFromTask", blockingHTTP},
		{"WaitFD", blockingWaitFD},
		{"ChildStdoutLineByLine", blockingChildLines},
		{"HundredChildrenExitCodes", blockingChildren},
		{"CancelUnblocksWait", blockingCancelWait},
		{"CancelUnblocksPipeRead", func(t *testing.T, h *scheduler.Hub) {
			needFileWatch(t, h)
			r, w, err := h.Pipe()
			require.NoError(t, err)
			defer r.Close()
			defer w.Close()
			coopCancel(t, h, func(ctx context.Context) error {
				_, err := r.Read(make([]byte, 1))
				return err
			})
		}},
		{"CancelUnblocksLookup", func(t *testing.T, h *scheduler.Hub) {
			dns := startDNS(t, fakedns.Config{Drop: true})
			h.SetResolver(dns.Resolver())
			coopCancel(t, h, func(ctx context.Context) error {
				_, err := h.Resolver().LookupHost(ctx, "cancel.evhub.test.")
				var de *net.DNSError
				if !errors.As(err, &de) {
					return fmt.Errorf("lookup error %#v is not a *net.DNSError", err)
				}
				return err
			})
		}},
		{"CancelUnblocksBlocking", func(t *testing.T, h *scheduler.Hub) {
			release := make(chan struct{})
			defer close(release)
			coopCancel(t, h, func(ctx context.Context) error {
				return scheduler.Blocking(ctx, func() error { <-release; return nil })
			})
		}},
		{"CloseFileUnblocksRead", blockingCloseFile},
	}
}

// needFileWatch makes a case n/a on a loop that cannot watch fds, after
// checking that hub files say so with errors.ErrUnsupported.
func needFileWatch(t *testing.T, h *scheduler.Hub) {
	t.Helper()
	requireUnsupported(t, h.Loop(), loop.CapWatch, func() error {
		r, w, err := h.Pipe()
		if err == nil {
			r.Close()
			w.Close()
		}
		return err
	})
}

func startDNS(t *testing.T, cfg fakedns.Config) *fakedns.Server {
	t.Helper()
	s, err := fakedns.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// echoTask starts a task that makes rounds round trips of 64 bytes with
// a standard-library echo peer over a hub-accepted connection (so it works
// on every backend), and sets done when finished.
func echoTask(t *testing.T, h *scheduler.Hub, rounds int, done *atomic.Bool) *scheduler.Task {
	t.Helper()
	c, peer := stdPair(t, h)
	go func() { _, _ = io.Copy(peer, peer) }()
	return spawn(t, h, func(ctx context.Context) error {
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		for i := 0; i < rounds; i++ {
			msg[0] = byte(i)
			if _, err := c.Write(msg); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if buf[0] != byte(i) {
				return fmt.Errorf("round %d: echo out of order", i)
			}
		}
		done.Store(true)
		return nil
	})
}

const manyLookups = 1000

// 1,000 lookups from tasks against a server that drops every query: the
// hub keeps serving another task, which finishes 200 echo round trips
// before the first lookup gives up. The lookups are then cancelled (net's
// cancellation error), and a few more reach their own deadline (net's
// timeout error). The order is the check, not a time: the lookups' own
// start-up takes the CPU for seconds on a small loaded machine under the
// race detector, so the round trips are not timed against a deadline, and
// the resolver's own per-query timeout is kept out of the way (Patient).
func blockingLookupsHang(t *testing.T, h *scheduler.Hub) {
	dns := startDNS(t, fakedns.Config{Drop: true, Patient: true})
	h.SetResolver(dns.Resolver())
	var echoDone atomic.Bool
	var early atomic.Int32
	lookups := func(g *scheduler.Group, n int, timeout time.Duration, prefix string, ok func(error) bool) *scheduler.Task {
		return spawn(t, h, func(ctx context.Context) error {
			for i := 0; i < n; i++ {
				if err := g.Go(func(ctx context.Context) error {
					ctx, cancel := context.WithTimeout(ctx, timeout)
					defer cancel()
					_, err := h.Resolver().LookupIPAddr(ctx, fmt.Sprintf("%s%d.evhub.test.", prefix, i))
					if !echoDone.Load() {
						early.Add(1)
					}
					var de *net.DNSError
					if !errors.As(err, &de) || !ok(err) {
						return fmt.Errorf("lookup %d: %#v, want net's *net.DNSError", i, err)
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g := h.NewGroup(context.Background(), 0)
	require.NoError(t, join(t, lookups(g, manyLookups, time.Minute, "q", func(err error) bool {
		return errors.Is(err, context.Canceled)
	})))
	require.NoError(t, join(t, echoTask(t, h, 200, &echoDone)))
	if n := early.Load(); n > 0 {
		g.Cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t.Fatalf("%d lookups gave up before the echo task finished (first error: %v)", n, g.Wait(ctx))
	}
	g.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, g.Wait(ctx))
	require.Positive(t, dns.Queries(), "the lookups reached the server")

	g = h.NewGroup(context.Background(), 0)
	require.NoError(t, join(t, lookups(g, 20, 200*time.Millisecond, "t", func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de) && de.IsTimeout && errors.Is(err, context.DeadlineExceeded)
	})))
	require.NoError(t, g.Wait(ctx))
}

// The same with a server that answers every query after 200 ms: every
// answer is right.
func blockingLookupsLate(t *testing.T, h *scheduler.Hub) {
	dns := startDNS(t, fakedns.Config{Delay: 200 * time.Millisecond, Patient: true})
	h.SetResolver(dns.Resolver())
	var echoDone atomic.Bool
	g := h.NewGroup(context.Background(), 0)
	spawner := spawn(t, h, func(ctx context.Context) error {
		for i := 0; i < manyLookups; i++ {
			if err := g.Go(func(ctx context.Context) error {
				name := fmt.Sprintf("a%d.evhub.test.", i)
				ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				ips, err := h.Resolver().LookupNetIP(ctx, "ip4", name)
				if err != nil {
					return fmt.Errorf("lookup %s: %w", name, err)
				}
				if len(ips) != 1 || ips[0] != fakedns.IPv4For(name) {
					return fmt.Errorf("lookup %s = %v, want %v", name, ips, fakedns.IPv4For(name))
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, join(t, spawner))
	require.NoError(t, join(t, echoTask(t, h, 200, &echoDone)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, g.Wait(ctx))
}

// A function that waits for something only another task of the same hub
// does cannot complete unless the hub keeps running.
func blockingHelper(t *testing.T, h *scheduler.Hub) {
	release := make(chan struct{})
	blocked := spawn(t, h, func(ctx context.Context) error {
		return scheduler.Blocking(ctx, func() error {
			select {
			case <-release:
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("the releasing task never ran: Blocking blocked the hub")
			}
		})
	})
	releaser := spawn(t, h, func(ctx context.Context) error {
		if err := h.Sleep(time.Millisecond); err != nil {
			return err
		}
		close(release)
		return nil
	})
	require.NoError(t, join(t, releaser))
	require.NoError(t, join(t, blocked))
}

// An http.Client GET from a task, through Blocking: the server answers
// only after another task of the same hub has ticked, so the GET
// completes only if the hub keeps running. Where the hub can dial, the
// client dials through it.
func blockingHTTP(t *testing.T, h *scheduler.Hub) {
	ticked := make(chan struct{})
	srvLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ticked:
			fmt.Fprint(w, "hello over http")
		case <-time.After(10 * time.Second):
			http.Error(w, "the ticking task never ran", http.StatusInternalServerError)
		}
	})}
	go func() { _ = srv.Serve(srvLn) }()
	defer srv.Close()
	tr := &http.Transport{}
	if loop.Supports(h.Loop(), loop.CapDial) {
		tr.DialContext = h.DialContext
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	get := spawn(t, h, func(ctx context.Context) error {
		body, err := scheduler.BlockingValue(ctx, func() (string, error) {
			req, err := http.NewRequestWithContext(ctx, "GET", "http://"+srvLn.Addr().String()+"/", nil)
			if err != nil {
				return "", err
			}
			resp, err := client.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return "", fmt.Errorf("status %s: %s", resp.Status, b)
			}
			return string(b), err
		})
		if err != nil {
			return err
		}
		if body != "hello over http" {
			return fmt.Errorf("body %q", body)
		}
		return nil
	})
	ticker := spawn(t, h, func(ctx context.Context) error {
		for i := 0; i < 5; i++ {
			if err := h.Sleep(time.Millisecond); err != nil {
				return err
			}
		}
		close(ticked)
		return nil
	})
	require.NoError(t, join(t, ticker))
	require.NoError(t, join(t, get))
}

// A task waits on an fd the hub does not own; errors are the standard
// library's.
func blockingWaitFD(t *testing.T, h *scheduler.Hub) {
	requireUnsupported(t, h.Loop(), loop.CapWatch, func() error {
		return h.WaitRead(context.Background(), 0, time.Now().Add(time.Millisecond))
	})
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	rc, err := r.SyscallConn()
	require.NoError(t, err)
	var rfd int
	require.NoError(t, rc.Control(func(fd uintptr) { rfd = int(fd) }))
	var ticks atomic.Int32
	ticker := spawn(t, h, func(ctx context.Context) error {
		for ctx.Err() == nil {
			if err := h.Sleep(time.Millisecond); err != nil {
				return nil
			}
			if ticks.Add(1) == 5 {
				go func() { _, _ = w.Write([]byte("x")) }()
			}
		}
		return nil
	})
	waiter := spawn(t, h, func(ctx context.Context) error {
		if err := h.WaitRead(ctx, rfd, time.Now().Add(20*time.Second)); err != nil {
			return err
		}
		if ticks.Load() < 5 {
			return errors.New("readable before anything was written")
		}
		if err := h.WaitRead(ctx, rfd, time.Now().Add(-time.Second)); !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("past deadline: %v", err)
		}
		return nil
	})
	require.NoError(t, join(t, waiter))
	ticker.Cancel()
	require.NoError(t, join(t, ticker))
	// Nothing to read after draining: the deadline ends the wait.
	_, err = r.Read(make([]byte, 1))
	require.NoError(t, err)
	require.ErrorIs(t, h.WaitRead(context.Background(), rfd, time.Now().Add(20*time.Millisecond)), os.ErrDeadlineExceeded)
	require.ErrorIs(t, h.WaitRead(context.Background(), -1, time.Time{}), syscall.EBADF)
}

// A task reads a child's stdout line by line while 100 other tasks sleep
// and wake; they all finish long before the child does.
func blockingChildLines(t *testing.T, h *scheduler.Hub) {
	requireUnsupported(t, h.Loop(), loop.CapWatch, func() error {
		_, err := hubexec.Command(h, "sh").StdoutPipe()
		return err
	})
	const lines, sleepers = 40, 100
	var sleepersDone atomic.Int32
	g := h.NewGroup(context.Background(), 0)
	for i := 0; i < sleepers; i++ {
		require.NoError(t, g.Go(func(ctx context.Context) error {
			for j := 0; j < 5; j++ {
				if err := h.Sleep(time.Duration(1+i%3) * time.Millisecond); err != nil {
					return err
				}
			}
			sleepersDone.Add(1)
			return nil
		}))
	}
	reader := spawn(t, h, func(ctx context.Context) error {
		c := hubexec.CommandContext(ctx, h, "sh", "-c",
			fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); sleep 0.02; done`, lines))
		out, err := c.StdoutPipe()
		if err != nil {
			return err
		}
		if err := c.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			if want := fmt.Sprintf("line %d", n); sc.Text() != want {
				return fmt.Errorf("got %q, want %q", sc.Text(), want)
			}
			n++
		}
		if err := sc.Err(); err != nil {
			return err
		}
		if n != lines {
			return fmt.Errorf("read %d lines, want %d", n, lines)
		}
		if got := sleepersDone.Load(); got != sleepers {
			return fmt.Errorf("only %d of %d sleeping tasks finished while the child ran (%d×20 ms)", got, sleepers, lines)
		}
		return c.Wait()
	})
	require.NoError(t, join(t, reader))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, g.Wait(ctx))
}

// 100 short-lived children at once, each exit code checked.
func blockingChildren(t *testing.T, h *scheduler.Hub) {
	const n = 100
	g := h.NewGroup(context.Background(), 0)
	for i := 0; i < n; i++ {
		require.NoError(t, g.Go(func(ctx context.Context) error {
			code := i % 11
			err := hubexec.Command(h, "sh", "-c", fmt.Sprintf("exit %d", code)).Run()
			if code == 0 {
				return err
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != code {
				return fmt.Errorf("child %d: %v, want exit status %d", i, err, code)
			}
			return nil
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, g.Wait(ctx))
}

// A task blocked in a child's Wait is cancelled: Wait returns at once, the
// child lives on, and a later Wait reaps it.
func blockingCancelWait(t *testing.T, h *scheduler.Hub) {
	c := hubexec.Command(h, "sleep", "30")
	require.NoError(t, c.Start())
	defer func() {
		_ = c.Process.Kill()
		err := c.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "the child is reaped after the cancelled Wait")
	}()
	coopCancel(t, h, func(ctx context.Context) error { return c.Wait() })
}

// Closing a hub file wakes the task blocked reading it, with *os.File's
// error.
func blockingCloseFile(t *testing.T, h *scheduler.Hub) {
	needFileWatch(t, h)
	r, w, err := h.Pipe()
	require.NoError(t, err)
	defer w.Close()
	entered := make(chan struct{})
	task := spawn(t, h, func(ctx context.Context) error {
		close(entered)
		_, err := r.Read(make([]byte, 1))
		var pe *os.PathError
		if !errors.As(err, &pe) || !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("Read on a closed file: %#v, want an *os.PathError wrapping os.ErrClosed", err)
		}
		return nil
	})
	<-entered
	time.Sleep(20 * time.Millisecond)
	require.False(t, task.Done(), "the task should still be blocked")
	require.NoError(t, r.Close())
	require.NoError(t, join(t, task))
	require.ErrorIs(t, r.Close(), os.ErrClosed)
}
