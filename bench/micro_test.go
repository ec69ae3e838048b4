package bench

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// fakeMicro is three backends' figures: netpoll meets every target, gnet
// misses the Post and allocation targets, evio cannot watch and had its
// timers benchmark fail.
func fakeMicro() []MicroResult {
	ok := func(backend, name string, ns float64) MicroResult {
		return MicroResult{Backend: backend, Name: name, N: 1000, NsPerOp: ns, Peer: ""}
	}
	np := []MicroResult{ok("netpoll", MicroPost, 812), ok("netpoll", MicroTimers, 40e6), ok("netpoll", MicroWakeup, 2345), ok("netpoll", MicroReadWrite, 3000)}
	np[1].TimersPerSec = 2.5e6
	np[3].Peer = "hub"
	gn := []MicroResult{ok("gnet", MicroPost, 1100), ok("gnet", MicroTimers, 40e6), ok("gnet", MicroWakeup, 5000), ok("gnet", MicroReadWrite, 3000)}
	gn[1].TimersPerSec = 1.5e6
	gn[3].Peer, gn[3].AllocsPerOp = "hub", 2
	ev := []MicroResult{ok("evio", MicroPost, 700),
		{Backend: "evio", Name: MicroTimers, Err: "did not finish within 31s (abandoned)"},
		{Backend: "evio", Name: MicroWakeup, NA: "watch: evio owns its sockets"},
		ok("evio", MicroReadWrite, 6000)}
	ev[3].Peer = StdlibRow
	return append(append(np, gn...), ev...)
}

func findTarget(t *testing.T, ts []Target, prefix string) Target {
	t.Helper()
	for _, tg := range ts {
		if strings.HasPrefix(tg.Name, prefix) {
			return tg
		}
	}
	require.Failf(t, "no target", "no target starting with %q in %+v", prefix, ts)
	return Target{}
}

func TestMicroTargets(t *testing.T) {
	ts := microTargets(fakeMicro())
	require.Len(t, ts, 3)

	post := findTarget(t, ts, "Post round trip ≤ 1 µs")
	assert.Equal(t, "not met", post.Status, "gnet's 1.1 µs misses it")
	assert.Equal(t, "netpoll 0.81 µs [met], gnet 1.10 µs [not met], evio 0.70 µs [met]", post.Detail)

	timers := findTarget(t, ts, "≥ 1M timers")
	assert.Equal(t, "not met", timers.Status, "a failed run cannot meet a target")
	assert.Equal(t, "netpoll 2.50M/s [met], gnet 1.50M/s [met], evio [failed]", timers.Detail)

	allocs := findTarget(t, ts, "0 allocs/op")
	assert.Equal(t, "not met", allocs.Status)
	assert.Equal(t, "netpoll 0 allocs/op [met], gnet 2 allocs/op [not met], evio 0 allocs/op (stdlib peer) [met]", allocs.Detail)

	// Only the good backend: every target met.
	ts = microTargets(fakeMicro()[:4])
	for _, tg := range ts {
		assert.Equal(t, "met", tg.Status, tg.Name)
	}

	// n/a does not count against a target, and alone measures nothing.
	ts = microTargets([]MicroResult{{Backend: "evio", Name: MicroPost, NA: "post: none"}})
	post = findTarget(t, ts, "Post round trip")
	assert.Equal(t, "not measured", post.Status)
	assert.Equal(t, "evio [n/a]", post.Detail)
	ts = microTargets([]MicroResult{
		{Backend: "evio", Name: MicroPost, NA: "post: none"},
		{Backend: "netpoll", Name: MicroPost, N: 10, NsPerOp: 900},
	})
	assert.Equal(t, "met", findTarget(t, ts, "Post round trip").Status)

	// None ran: not measured, with the way to measure them.
	for _, tg := range microTargets(nil) {
		assert.Equal(t, "not measured", tg.Status)
		assert.Contains(t, tg.Detail, "-micro 0")
		assert.Contains(t, tg.Detail, "BenchmarkBackends")
	}
}

func TestMicroTable(t *testing.T) {
	var b bytes.Buffer
	ew := &errWriter{w: &b}
	writeMicro(ew, fakeMicro(), 200*time.Millisecond)
	require.NoError(t, ew.err)
	out := b.String()
	assert.Contains(t, out, "Loop micro-benchmarks (testing.Benchmark, ~200ms each; in-process, unpinned, before the server runs)")
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	assert.Equal(t, []string{"backend", "Post", "rt", "ns", "timers/s", "ready→wake", "ns", "ready", "R+W", "allocs/op"}, rows["backend"])
	assert.Equal(t, []string{"netpoll", "812", "2,500,000", "2,345", "0"}, rows["netpoll"])
	assert.Equal(t, []string{"gnet", "1,100", "1,500,000", "5,000", "2"}, rows["gnet"])
	assert.Equal(t, []string{"evio", "700", "FAILED", "n/a", "0", "(stdlib", "peer)"}, rows["evio"])
	assert.Contains(t, out, "  n/a  evio ready-to-wakeup: watch: evio owns its sockets\n")
	assert.Contains(t, out, "  FAIL evio timers-100k: did not finish within 31s (abandoned)\n")

	b.Reset()
	writeMicro(ew, nil, time.Second)
	assert.Empty(t, b.String(), "no table when none ran")
}

func TestMicroInReport(t *testing.T) {
	cfg := fakeConfig()
	r := fakeReport()
	r.Config.MicroMS = 200
	r.Micro = fakeMicro()
	r.summarize(cfg)
	assert.Equal(t, "Post round trip ≤ 1 µs (every backend)", r.Targets[len(r.Targets)-3].Name)
	require.Len(t, r.MicroFailures(), 1)
	assert.Equal(t, MicroTimers, r.MicroFailures()[0].Name)

	for _, write := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return r.WriteSummary(b, cfg) },
		func(b *bytes.Buffer) error { return r.WriteText(b, cfg) },
	} {
		var b bytes.Buffer
		require.NoError(t, write(&b))
		out := b.String()
		micro := strings.Index(out, "Loop micro-benchmarks")
		targets := strings.Index(out, "Targets:")
		require.Positive(t, micro)
		assert.Less(t, micro, targets, "the table comes before the targets")
		assert.Contains(t, out[targets:], "[not met] Post round trip ≤ 1 µs (every backend)\n      netpoll 0.81 µs [met], gnet 1.10 µs [not met], evio 0.70 µs [met]\n")
	}

	var b bytes.Buffer
	require.NoError(t, r.WriteBenchstat(&b))
	out := b.String()
	assert.Contains(t, out, "BenchmarkBackends/backend=netpoll/post-roundtrip\t1000\t812.0 ns/op\t0 B/op\t0 allocs/op\n")
	assert.Contains(t, out, "BenchmarkBackends/backend=netpoll/timers-100k\t1000\t40000000.0 ns/op\t2500000 timers/s\t0 B/op\t0 allocs/op\n")
	assert.Contains(t, out, "BenchmarkBackends/backend=gnet/ready-read-write\t1000\t3000.0 ns/op\t0 B/op\t2 allocs/op\n")
	assert.NotContains(t, out, "backend=evio/timers-100k", "a failed benchmark has no line")
	assert.NotContains(t, out, "backend=evio/ready-to-wakeup", "an n/a benchmark has no line")

	b.Reset()
	require.NoError(t, r.WriteJSON(&b))
	assert.Contains(t, b.String(), `"micro": [`)
	assert.Contains(t, b.String(), `"timers_per_s": 2500000`)
	assert.Contains(t, b.String(), `"micro_benchtime_ms": 200`)
}

func TestMicroFlags(t *testing.T) {
	cfg, err := ParseFlags("compare", nil)
	require.NoError(t, err)
	assert.Equal(t, 200*time.Millisecond, cfg.Micro)
	cfg, err = ParseFlags("bench", nil)
	require.NoError(t, err)
	assert.Equal(t, 500*time.Millisecond, cfg.Micro)
	cfg, err = ParseFlags("bench", []string{"-full"})
	require.NoError(t, err)
	assert.Equal(t, time.Second, cfg.Micro)
	cfg, err = ParseFlags("bench", []string{"-full", "-micro", "0"})
	require.NoError(t, err)
	assert.Zero(t, cfg.Micro, "-micro 0 skips them")
	_, err = ParseFlags("bench", []string{"-micro", "-1s"})
	require.ErrorContains(t, err, "-micro -1s out of range")

	// The micro-benchmarks run on the backends of the evhub rows only.
	cfg, err = ParseFlags("bench", []string{"-backend", "gnet"})
	require.NoError(t, err)
	assert.Equal(t, []string{"gnet"}, microBackends(cfg.Servers))
	assert.Empty(t, microBackends(fakeConfig().Servers[:2]), "baseline rows bring no micro-benchmark")
}

func TestMicroBenchtimeRestored(t *testing.T) {
	before := flag.Lookup("test.benchtime").Value.String()
	restore, err := setBenchtime(5 * time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "5ms", flag.Lookup("test.benchtime").Value.String())
	restore()
	assert.Equal(t, before, flag.Lookup("test.benchtime").Value.String())
}

func TestMicroCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := runMicro(ctx, []string{"netpoll"}, time.Millisecond, newProgress(nil, 0))
	require.ErrorIs(t, err, context.Canceled)
}

// TestMicroRunNetpoll runs every micro-benchmark once on netpoll with a
// tiny benchtime (one op each, as b.Loop stops once it is exceeded) and
// checks each has its figures. It asserts no speed: that is what the
// figures are for.
func TestMicroRunNetpoll(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fds := openFDs(t)
	var prog bytes.Buffer
	ms, err := runMicro(context.Background(), []string{"netpoll"}, time.Millisecond, newProgress(&prog, len(microBenches)))
	require.NoError(t, err)
	require.Len(t, ms, len(microBenches))
	for i, m := range ms {
		assert.Equal(t, "netpoll", m.Backend)
		assert.Equal(t, MicroNames()[i], m.Name)
		require.True(t, m.OK(), "%s: %s%s", m.Name, m.Err, m.NA)
		assert.Positive(t, m.N, m.Name)
		assert.Positive(t, m.NsPerOp, m.Name)
	}
	tm, _ := microFind(ms, "netpoll", MicroTimers)
	assert.Positive(t, tm.TimersPerSec)
	rw, _ := microFind(ms, "netpoll", MicroReadWrite)
	assert.Equal(t, "hub", rw.Peer, "netpoll dials through the hub")
	assert.Contains(t, prog.String(), "micro netpoll   post-roundtrip")
	assert.Equal(t, fds, openFDs(t), "every loop, hub and socket is closed")
}
