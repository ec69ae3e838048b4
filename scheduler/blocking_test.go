package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/internal/fakedns"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// joinTask waits, bounded, for a task.
func joinTask(t *testing.T, task *scheduler.Task) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := task.Wait(ctx)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "task did not finish in 20s")
	return err
}

func goTask(t *testing.T, h *scheduler.Hub, fn func(ctx context.Context) error) *scheduler.Task {
	t.Helper()
	task, err := h.Go(fn)
	require.NoError(t, err)
	return task
}

// A function that waits on a plain channel only another task of the same
// hub closes: run in place it would deadlock the hub; through Blocking it
// returns.
func TestBlockingParksOnlyTheTask(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			release := make(chan struct{})
			blocked := goTask(t, h, func(ctx context.Context) error {
				return scheduler.Blocking(ctx, func() error {
					select {
					case <-release:
						return nil
					case <-time.After(10 * time.Second):
						return errors.New("the releasing task never ran: the hub was blocked")
					}
				})
			})
			releaser := goTask(t, h, func(ctx context.Context) error {
				if err := h.Sleep(time.Millisecond); err != nil {
					return err
				}
				close(release)
				return nil
			})
			require.NoError(t, joinTask(t, releaser))
			require.NoError(t, joinTask(t, blocked))
		})
	}
}

func TestBlockingFromGoroutineCallsInPlace(t *testing.T) {
	ran := false
	require.NoError(t, scheduler.Blocking(context.Background(), func() error { ran = true; return nil }))
	require.True(t, ran, "called synchronously: no race on ran")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, scheduler.Blocking(ctx, func() error { t.Error("fn ran with a done context"); return nil }), context.Canceled)
	require.ErrorIs(t, scheduler.Blocking(context.Background(), nil), scheduler.ErrNilFunc)
	v, err := scheduler.BlockingValue(context.Background(), func() (int, error) { return 42, nil })
	require.NoError(t, err)
	require.Equal(t, 42, v)
}

func TestBlockingCancelEndsWaitFnRunsToEnd(t *testing.T) {
	h := openHub(t, "netpoll")
	release := make(chan struct{})
	var finished atomic.Bool
	entered := make(chan struct{})
	task := goTask(t, h, func(ctx context.Context) error {
		return scheduler.Blocking(ctx, func() error {
			close(entered)
			<-release
			finished.Store(true)
			return nil
		})
	})
	<-entered
	task.Cancel()
	require.ErrorIs(t, joinTask(t, task), context.Canceled)
	require.False(t, finished.Load(), "the wait ended before fn did")
	close(release)
	require.Eventually(t, finished.Load, 10*time.Second, time.Millisecond, "fn runs to its end")

	// A context of the caller's own does the same; BlockingValue hands
	// back the value only when fn finished.
	task = goTask(t, h, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		v, err := scheduler.BlockingValue(cctx, func() (string, error) {
			time.Sleep(200 * time.Millisecond)
			return "late", nil
		})
		if v != "" {
			return fmt.Errorf("abandoned BlockingValue returned %q", v)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("got %v, want context.DeadlineExceeded", err)
		}
		return nil
	})
	require.NoError(t, joinTask(t, task))
}

func TestBlockingLimitQueuesAndSkipsAbandoned(t *testing.T) {
	h := openHub(t, "netpoll")
	prev, err := scheduler.SetBlockingLimit(2)
	require.NoError(t, err)
	defer scheduler.SetBlockingLimit(prev)
	_, err = scheduler.SetBlockingLimit(0)
	require.Error(t, err)

	release := make(chan struct{})
	var ran [5]atomic.Bool
	var tasks [5]*scheduler.Task
	for i := range tasks {
		tasks[i] = goTask(t, h, func(ctx context.Context) error {
			return scheduler.Blocking(ctx, func() error {
				ran[i].Store(true)
				<-release
				return nil
			})
		})
	}
	require.Eventually(t, func() bool {
		running, queued := scheduler.BlockingStats()
		return running == 2 && queued == 3
	}, 10*time.Second, time.Millisecond, "two run, three wait for a slot")
	// Cancel a queued one: its function must never run.
	var queuedIdx = -1
	for i := range ran {
		if !ran[i].Load() {
			queuedIdx = i
			break
		}
	}
	require.GreaterOrEqual(t, queuedIdx, 0)
	tasks[queuedIdx].Cancel()
	require.ErrorIs(t, joinTask(t, tasks[queuedIdx]), context.Canceled)
	close(release)
	for i, task := range tasks {
		if i != queuedIdx {
			require.NoError(t, joinTask(t, task))
		}
	}
	require.False(t, ran[queuedIdx].Load(), "an abandoned queued call never runs")
	require.Eventually(t, func() bool { r, q := scheduler.BlockingStats(); return r == 0 && q == 0 }, 10*time.Second, time.Millisecond)
}

func TestBlockingPanicBecomesTaskError(t *testing.T) {
	h := openHub(t, "netpoll")
	task := goTask(t, h, func(ctx context.Context) error {
		return scheduler.Blocking(ctx, func() error { panic("offloaded boom") })
	})
	var pe *scheduler.PanicError
	require.ErrorAs(t, joinTask(t, task), &pe)
	require.Equal(t, "offloaded boom", pe.Value)
}

func TestMonitorNamesTheRemedy(t *testing.T) {
	r := scheduler.MonitorReport{Backend: "netpoll", Blocked: time.Second, Stack: "goroutine 1 [running]:"}
	assert.Contains(t, r.String(), "scheduler.Blocking")
}

func fakeDNS(t testing.TB, cfg fakedns.Config) *fakedns.Server {
	t.Helper()
	s, err := fakedns.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestResolverFromTasks(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			dns := fakeDNS(t, fakedns.Config{Hosts: map[string]netip.Addr{"svc.evhub.test.": netip.MustParseAddr("127.0.0.1")}})
			h.SetResolver(dns.Resolver())
			task := goTask(t, h, func(ctx context.Context) error {
				ips, err := h.Resolver().LookupNetIP(ctx, "ip4", "a.evhub.test.")
				if err != nil {
					return err
				}
				if len(ips) != 1 || ips[0] != fakedns.IPv4For("a.evhub.test.") {
					return fmt.Errorf("a.evhub.test. = %v", ips)
				}
				_, err = h.Resolver().LookupHost(ctx, "gone"+fakedns.NXSuffix)
				var de *net.DNSError
				if !errors.As(err, &de) || !de.IsNotFound {
					return fmt.Errorf("NXDOMAIN: %#v, want a *net.DNSError with IsNotFound", err)
				}
				// Listen with a name resolves through the hub's resolver.
				ln, err := h.Listen("tcp", "svc.evhub.test.:0")
				if err != nil {
					return err
				}
				defer ln.Close()
				if ip := ln.Addr().(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
					return fmt.Errorf("listener on %v, want 127.0.0.1", ip)
				}
				if !loop.Supports(h.Loop(), loop.CapDial) {
					return nil
				}
				_, port, _ := net.SplitHostPort(ln.Addr().String())
				c, err := h.DialContext(ctx, "tcp", "svc.evhub.test.:"+port)
				if err != nil {
					return err
				}
				return c.Close()
			})
			require.NoError(t, joinTask(t, task))
			// From a goroutine the same resolver answers.
			addrs, err := h.Resolver().LookupHost(context.Background(), "b.evhub.test.")
			require.NoError(t, err)
			require.Equal(t, []string{fakedns.IPv4For("b.evhub.test.").String()}, addrs)
		})
	}
}

// By default the hub answers as net.DefaultResolver does (here from
// /etc/hosts, which needs no network).
func TestResolverDefaultIsNets(t *testing.T) {
	h := openHub(t, "netpoll")
	want, wantErr := net.DefaultResolver.LookupHost(context.Background(), "localhost")
	task := goTask(t, h, func(ctx context.Context) error {
		got, err := h.Resolver().LookupHost(ctx, "localhost")
		if fmt.Sprint(got, err) != fmt.Sprint(want, wantErr) {
			return fmt.Errorf("hub: %v %v; net: %v %v", got, err, want, wantErr)
		}
		port, err := h.Resolver().LookupPort(ctx, "tcp", "http")
		wport, werr := net.DefaultResolver.LookupPort(ctx, "tcp", "http")
		if port != wport || fmt.Sprint(err) != fmt.Sprint(werr) {
			return fmt.Errorf("port: hub %v %v, net %v %v", port, err, wport, werr)
		}
		return nil
	})
	require.NoError(t, joinTask(t, task))
}

// A lookup that hangs parks only its task: another task keeps ticking, and
// the lookup ends with net's timeout error.
func TestResolverHangingLookupDoesNotBlockHub(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			dns := fakeDNS(t, fakedns.Config{Drop: true})
			h.SetResolver(dns.Resolver())
			var ticks atomic.Int32
			ticker := goTask(t, h, func(ctx context.Context) error {
				for ctx.Err() == nil {
					if err := h.Sleep(2 * time.Millisecond); err != nil {
						return nil
					}
					ticks.Add(1)
				}
				return nil
			})
			task := goTask(t, h, func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				_, err := h.Resolver().LookupIPAddr(ctx, "hang.evhub.test.")
				var de *net.DNSError
				if !errors.As(err, &de) || !de.IsTimeout {
					return fmt.Errorf("got %#v, want a *net.DNSError with IsTimeout", err)
				}
				if ticks.Load() == 0 {
					return errors.New("no other task ran while the lookup hung")
				}
				return nil
			})
			require.NoError(t, joinTask(t, task))
			// Cancelling a task blocked in a lookup ends it at once.
			entered := make(chan struct{})
			task = goTask(t, h, func(ctx context.Context) error {
				close(entered)
				_, err := h.Resolver().LookupHost(ctx, "hang2.evhub.test.")
				return err
			})
			<-entered
			time.Sleep(20 * time.Millisecond)
			task.Cancel()
			err := joinTask(t, task)
			require.ErrorIs(t, err, context.Canceled)
			var de *net.DNSError
			require.ErrorAs(t, err, &de, "net's own error for a cancelled lookup")
			ticker.Cancel()
			require.NoError(t, joinTask(t, ticker))
		})
	}
}
