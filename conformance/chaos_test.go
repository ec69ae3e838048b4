package conformance_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/loop/chaos"
	"github.com/evhub/evhub/scheduler"
)

// chaosSeeds are the seeds the chaos-wrapped suites run with: a few fixed
// ones (every seed that ever made a case fail stays in this list), or
// EVHUB_CHAOS_SEEDS=1,2,3 to run others.
func chaosSeeds(t *testing.T) []uint64 {
	seeds := []uint64{1, 2}
	if v := os.Getenv("EVHUB_CHAOS_SEEDS"); v != "" {
		seeds = nil
		for _, f := range strings.Split(v, ",") {
			s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			require.NoError(t, err, "EVHUB_CHAOS_SEEDS")
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// chaosHub opens a hub on backend name wrapped in chaos; every hub of a
// run gets its own seed derived from seed.
func chaosHub(name string, seed uint64, k *atomic.Uint64) (*scheduler.Hub, error) {
	l, err := loop.Open(name)
	if err != nil {
		return nil, err
	}
	return scheduler.New(chaos.Wrap(l, seed*1_000_003+k.Add(1)))
}

// TestChaosHubs runs the socket half of the suite on a hub of every
// backend wrapped in the chaos loop (spurious, duplicate and late events,
// late timers, posts cut short): the scheduler must be correct on any
// loop that keeps the contract, not only on punctual ones.
func TestChaosHubs(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos-wrapped socket suite is long")
	}
	for _, name := range loop.Names() {
		for _, seed := range chaosSeeds(t) {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				var k atomic.Uint64
				conformance.TestNetwork(t, func() (conformance.Network, func() error, error) {
					h, err := chaosHub(name, seed, &k)
					if err != nil {
						return nil, nil, err
					}
					return h, h.Close, nil
				})
			})
		}
	}
}

// TestChaosCooperative runs the cooperative-task cases the same way.
func TestChaosCooperative(t *testing.T) {
	for _, name := range loop.Names() {
		for _, seed := range chaosSeeds(t) {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				var k atomic.Uint64
				conformance.TestCooperative(t, func() (*scheduler.Hub, error) { return chaosHub(name, seed, &k) })
			})
		}
	}
}
