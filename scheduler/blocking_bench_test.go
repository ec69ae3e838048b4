package scheduler_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/internal/fakedns"
	"github.com/evhub/evhub/scheduler"
)

// BenchmarkTimerLateness measures how late a task's 1 ms Sleep wakes up
// (p50, p99 and max, in µs) on an idle hub and on a hub where 1,000 tasks
// are blocked in lookups that a DNS server never answers: the lookups run
// off the hub, so the two rows should differ by no more than the
// machine's noise (the target is p99 within 1 ms of idle's). Measuring
// starts once the lookups have sent their queries.
//
//	go test -run XXX -bench TimerLateness -benchtime 2000x ./scheduler/
func BenchmarkTimerLateness(b *testing.B) {
	for _, name := range backends() {
		for _, hanging := range []int{0, 1000} {
			b.Run(fmt.Sprintf("backend=%s/hanging-lookups=%d", name, hanging), func(b *testing.B) {
				h := openHub(b, name)
				if hanging > 0 {
					dns, err := fakedns.Start(fakedns.Config{Drop: true, Patient: true})
					require.NoError(b, err)
					defer dns.Close()
					h.SetResolver(dns.Resolver())
					g := h.NewGroup(context.Background(), 0)
					defer func() {
						g.Cancel()
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						defer cancel()
						_ = g.Wait(ctx)
					}()
					for i := 0; i < hanging; i++ {
						require.NoError(b, g.Go(func(ctx context.Context) error {
							_, err := h.Resolver().LookupIPAddr(ctx, fmt.Sprintf("hang%d.evhub.test.", i))
							return err
						}))
					}
					// The lookups have started once the server stops
					// receiving queries (the kernel may drop some of the
					// burst: those lookups wait all the same).
					deadline := time.Now().Add(30 * time.Second)
					for last, stable := int64(-1), 0; stable < 10 && time.Now().Before(deadline); {
						time.Sleep(100 * time.Millisecond)
						if n := dns.Queries(); n == last && n > 0 {
							stable++
						} else {
							last, stable = n, 0
						}
					}
					require.Positive(b, dns.Queries(), "the lookups did not start")
					b.Logf("%d queries received for %d lookups", dns.Queries(), hanging)
				}
				late := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				task, err := h.Go(func(ctx context.Context) error {
					for i := 0; i < b.N; i++ {
						t0 := time.Now()
						if err := h.Sleep(time.Millisecond); err != nil {
							return err
						}
						late = append(late, time.Since(t0)-time.Millisecond)
					}
					return nil
				})
				require.NoError(b, err)
				require.NoError(b, task.Wait(context.Background()))
				b.StopTimer()
				slices.Sort(late)
				us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
				b.ReportMetric(us(late[len(late)/2]), "p50-late-µs")
				b.ReportMetric(us(late[len(late)*99/100]), "p99-late-µs")
				b.ReportMetric(us(late[len(late)-1]), "max-late-µs")
			})
		}
	}
}

// BenchmarkBlockingTrip is the cost of one trip through Blocking from a
// task: hand the function to a goroutine, park the task, run it, wake the
// task through its hub. The direct row is the same function called in
// place, for scale.
//
//	go test -run XXX -bench BlockingTrip -benchtime 20000x ./scheduler/
func BenchmarkBlockingTrip(b *testing.B) {
	nop := func() error { return nil }
	for _, name := range backends() {
		for _, mode := range []string{"blocking", "direct"} {
			b.Run("backend="+name+"/"+mode, func(b *testing.B) {
				h := openHub(b, name)
				b.ReportAllocs()
				b.ResetTimer()
				task, err := h.Go(func(ctx context.Context) error {
					for i := 0; i < b.N; i++ {
						var err error
						if mode == "blocking" {
							err = scheduler.Blocking(ctx, nop)
						} else {
							err = nop()
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				require.NoError(b, err)
				require.NoError(b, task.Wait(context.Background()))
			})
		}
	}
}
