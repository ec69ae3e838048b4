package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// The loop micro-benchmarks, by the names conformance.BenchmarkLoop gives
// them (the last one is the bench's own: conformance tests loops, not
// hubs).
const (
	// MicroPost is a Post round trip (conformance.BenchmarkPostRoundTrip).
	MicroPost = "post-roundtrip"
	// MicroTimers is 100,000 timers scheduled and fired per op
	// (conformance.BenchmarkTimers100k); it reports timers/s.
	MicroTimers = "timers-100k"
	// MicroWakeup is readiness to woken goroutine through a
	// level-triggered watcher (conformance.BenchmarkReadyToWakeup).
	MicroWakeup = "ready-to-wakeup"
	// MicroReadWrite is a 64-byte Write and an io.ReadFull on ready hub TCP
	// sockets, for allocations per op.
	MicroReadWrite = "ready-read-write"
)

// microBench is one micro-benchmark: how to run it on a backend, and the
// capability whose absence makes it n/a.
type microBench struct {
	name  string
	needs loop.Capability
	run   func(b *testing.B, backend string, note *microNote)
}

// microNote carries what a benchmark has to say back past testing.B, whose
// log is discarded outside go test: the peer used and the reason of a
// failure. Written by the benchmark goroutine, read after testing.Benchmark
// returns (which synchronises with it).
type microNote struct {
	peer string
	err  string
}

func openLoopOf(backend string) func() (loop.Loop, error) {
	return func() (loop.Loop, error) { return loop.Open(backend) }
}

var microBenches = []microBench{
	{name: MicroPost, run: func(b *testing.B, backend string, _ *microNote) {
		conformance.BenchmarkPostRoundTrip(b, openLoopOf(backend))
	}},
	{name: MicroTimers, run: func(b *testing.B, backend string, _ *microNote) {
		conformance.BenchmarkTimers100k(b, openLoopOf(backend))
	}},
	{name: MicroWakeup, needs: loop.CapWatch, run: func(b *testing.B, backend string, _ *microNote) {
		conformance.BenchmarkReadyToWakeup(b, openLoopOf(backend))
	}},
	{name: MicroReadWrite, run: benchReadyReadWrite},
}

// MicroNames lists the micro-benchmarks in display order.
func MicroNames() []string {
	out := make([]string, len(microBenches))
	for i, m := range microBenches {
		out[i] = m.name
	}
	return out
}

// MicroResult is one loop micro-benchmark on one backend, run in-process
// by testing.Benchmark.
type MicroResult struct {
	Backend string `json:"backend"`
	Name    string `json:"name"`
	// N is the number of ops timed; 0 when there is no figure.
	N       int     `json:"n,omitempty"`
	NsPerOp float64 `json:"ns_per_op,omitempty"`
	// AllocsPerOp and BytesPerOp are whole-process heap allocations
	// during the timed ops divided by N, rounded down as go test -benchmem
	// shows them; Mallocs is the exact count behind AllocsPerOp.
	AllocsPerOp int64  `json:"allocs_per_op"`
	BytesPerOp  int64  `json:"bytes_per_op"`
	Mallocs     uint64 `json:"mallocs"`
	// TimersPerSec is timers-100k's timers scheduled and fired per second.
	TimersPerSec float64 `json:"timers_per_s,omitempty"`
	// Peer is ready-read-write's other end: "hub" (hub.Dial) or "stdlib"
	// (net.Dial, for a backend that cannot dial).
	Peer string `json:"peer,omitempty"`
	// NA is why the backend cannot run the benchmark (a capability it
	// declares unsupported); Err is why a run produced no figure.
	NA  string `json:"na,omitempty"`
	Err string `json:"error,omitempty"`
}

// OK reports whether the result has figures.
func (m MicroResult) OK() bool { return m.Err == "" && m.NA == "" && m.N > 0 }

// microBackends are the backends of the evhub rows in servers, in the
// registry's order.
func microBackends(servers []*Server) []string {
	var out []string
	for _, name := range evhub.Backends() {
		for _, s := range servers {
			if s.Kind.IsEvhub() && s.Backend == name {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// microTimeout bounds one micro-benchmark: its benchtime, the ramp-up's
// overshoot and the conformance stall bound (5 s) with room to spare. A
// benchmark that exceeds it is abandoned (its goroutine stays blocked) and
// reported as failed.
func microTimeout(benchtime time.Duration) time.Duration { return 30*time.Second + 5*benchtime }

var benchtimeMu sync.Mutex

// setBenchtime sets testing's -test.benchtime, which testing.Benchmark
// reads when it starts a benchmark (Go 1.26 offers no other way to bound
// it), and returns a function that restores the previous value.
// testing.Init registers the test.* flags on flag.CommandLine; under go
// test it has run already and is a no-op, in the evhub command it only adds
// flags nobody parses.
func setBenchtime(d time.Duration) (restore func(), err error) {
	benchtimeMu.Lock()
	testing.Init()
	f := flag.Lookup("test.benchtime")
	if f == nil {
		benchtimeMu.Unlock()
		return nil, errors.New("micro-benchmarks: testing.Init registered no test.benchtime flag")
	}
	old := f.Value.String()
	if err := f.Value.Set(d.String()); err != nil {
		benchtimeMu.Unlock()
		return nil, fmt.Errorf("micro-benchmarks: set test.benchtime to %v: %w", d, err)
	}
	return func() {
		_ = f.Value.Set(old) // a value it printed itself
		benchtimeMu.Unlock()
	}, nil
}

// runMicro runs every micro-benchmark on every backend, one after the
// other, each for about benchtime, in this process and unpinned. A
// benchmark that fails is recorded with the reason; only ctx stops the
// whole.
func runMicro(ctx context.Context, backends []string, benchtime time.Duration, prog *progress) ([]MicroResult, error) {
	restore, err := setBenchtime(benchtime)
	if err != nil {
		return nil, err
	}
	defer restore()
	var out []MicroResult
	for _, backend := range backends {
		missing := unsupportedOf(backend)
		for _, mb := range microBenches {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			prog.describe(fmt.Sprintf("micro %-9s %s", backend, mb.name))
			res, err := runMicroOne(ctx, backend, mb, microTimeout(benchtime), missing)
			if err != nil {
				return nil, err
			}
			out = append(out, res)
			prog.add()
		}
	}
	return out, nil
}

// unsupportedOf returns the capabilities backend declares missing; nil if
// its loop cannot even be opened (the benchmarks then fail with the
// reason).
func unsupportedOf(backend string) map[loop.Capability]string {
	l, err := loop.Open(backend)
	if err != nil {
		return nil
	}
	defer l.Close()
	return loop.UnsupportedOf(l)
}

// runMicroOne runs one benchmark through testing.Benchmark in its own
// goroutine, bounded by timeout. The error is ctx's only.
func runMicroOne(ctx context.Context, backend string, mb microBench, timeout time.Duration, missing map[loop.Capability]string) (MicroResult, error) {
	res := MicroResult{Backend: backend, Name: mb.name}
	type outcome struct {
		r               testing.BenchmarkResult
		failed, skipped bool
		note            microNote
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		o.r = testing.Benchmark(func(b *testing.B) {
			// Deferred, so it runs on b.Fatal and b.Skip (runtime.Goexit).
			defer func() { o.failed, o.skipped = b.Failed(), b.Skipped() }()
			mb.run(b, backend, &o.note)
		})
		done <- o
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		return res, ctx.Err()
	case <-t.C:
		res.Err = fmt.Sprintf("did not finish within %v (abandoned)", timeout)
		return res, nil
	}
	res.Peer = o.note.peer
	switch {
	case o.skipped && !o.failed:
		if reason, ok := missing[mb.needs]; ok && mb.needs != "" {
			res.NA = fmt.Sprintf("%s: %s", mb.needs, reason)
		} else {
			res.NA = "skipped by the benchmark"
		}
		return res, nil
	case o.failed:
		res.Err = o.note.err
		if res.Err == "" {
			// testing.Benchmark discards the benchmark's log.
			res.Err = fmt.Sprintf("the benchmark failed; for its message run: go test -run '^$' -bench 'BenchmarkBackends/backend=%s/%s$' ./conformance/", backend, mb.name)
		}
		return res, nil
	case o.r.N <= 0:
		res.Err = "the benchmark timed no op"
		return res, nil
	}
	res.N = o.r.N
	res.NsPerOp = float64(o.r.T.Nanoseconds()) / float64(o.r.N)
	res.AllocsPerOp, res.BytesPerOp, res.Mallocs = o.r.AllocsPerOp(), o.r.AllocedBytesPerOp(), o.r.MemAllocs
	res.TimersPerSec = o.r.Extra["timers/s"]
	return res, nil
}

// benchReadyReadWrite is the allocation check on hub sockets: a connected
// TCP pair, then per op a 64-byte Write on one hub connection and an
// io.ReadFull of it on the other, both on sockets that are ready (the
// scheduler's fast path). A backend that cannot dial pairs the connection
// it accepted with a stdlib-dialled peer, and each op then writes on the
// hub connection, reads it on the peer, writes back and reads on the hub
// connection: one hub Write and one hub Read per op either way. Allocations
// are the whole process's, loop and scheduler included.
func benchReadyReadWrite(b *testing.B, backend string, note *microNote) {
	fail := func(format string, args ...any) {
		note.err = fmt.Sprintf(format, args...)
		b.Fatal(note.err)
	}
	hub, err := evhub.Open(backend)
	if err != nil {
		fail("open hub on %s: %v", backend, err)
	}
	b.Cleanup(func() { _ = hub.Close() })
	ln, err := hub.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("hub.Listen: %v", err)
	}
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var dialed net.Conn
	if loop.Supports(hub, loop.CapDial) {
		note.peer = "hub"
		dialed, err = hub.Dial("tcp", ln.Addr().String())
	} else {
		note.peer = StdlibRow
		dialed, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	}
	if err != nil {
		_ = ln.Close()
		fail("dial the hub listener (%s peer): %v", note.peer, err)
	}
	b.Cleanup(func() { _ = dialed.Close() })
	var a accepted
	select {
	case a = <-ch:
	case <-time.After(5 * time.Second):
		a.err = errors.New("no connection within 5s")
	}
	_ = ln.Close()
	if a.err != nil {
		fail("accept on the hub listener: %v", a.err)
	}
	b.Cleanup(func() { _ = a.c.Close() })
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ReportAllocs()
	if note.peer == "hub" {
		for b.Loop() {
			if _, err := dialed.Write(msg); err != nil {
				fail("hub Write: %v", err)
			}
			if _, err := io.ReadFull(a.c, buf); err != nil {
				fail("hub Read: %v", err)
			}
		}
		return
	}
	for b.Loop() {
		if _, err := a.c.Write(msg); err != nil {
			fail("hub Write: %v", err)
		}
		if _, err := io.ReadFull(dialed, buf); err != nil {
			fail("peer Read: %v", err)
		}
		if _, err := dialed.Write(msg); err != nil {
			fail("peer Write: %v", err)
		}
		if _, err := io.ReadFull(a.c, buf); err != nil {
			fail("hub Read: %v", err)
		}
	}
}

// MicroFailures lists the micro-benchmarks that produced no figure for a
// reason other than a capability the backend declares missing.
func (r *Report) MicroFailures() []MicroResult {
	var out []MicroResult
	for _, m := range r.Micro {
		if m.NA == "" && !m.OK() {
			out = append(out, m)
		}
	}
	return out
}

// microFind returns the result of (backend, name).
func microFind(ms []MicroResult, backend, name string) (MicroResult, bool) {
	i := slices.IndexFunc(ms, func(m MicroResult) bool { return m.Backend == backend && m.Name == name })
	if i < 0 {
		return MicroResult{}, false
	}
	return ms[i], true
}

// Thresholds of the loop-level targets.
const (
	targetPostNS       = 1000
	targetTimersPerSec = 1e6
)

// microTargets states the three loop-level targets, each held by every
// backend measured: Post round trip ≤ 1 µs, ≥ 1M timers scheduled and
// fired per second, 0 allocs/op on ready hub reads and writes. A backend
// that could not run a benchmark (n/a) is listed and not held to it; one
// whose run failed fails the target; none measured at all is "not
// measured".
func microTargets(ms []MicroResult) []Target {
	var backends []string
	for _, m := range ms {
		if !slices.Contains(backends, m.Backend) {
			backends = append(backends, m.Backend)
		}
	}
	type spec struct {
		name, bench string
		ok          func(MicroResult) bool
		figure      func(MicroResult) string
	}
	specs := []spec{
		{"Post round trip ≤ 1 µs (every backend)", MicroPost,
			func(m MicroResult) bool { return m.NsPerOp <= targetPostNS },
			func(m MicroResult) string { return fmt.Sprintf("%.2f µs", m.NsPerOp/1e3) }},
		{"≥ 1M timers scheduled and fired per second (every backend)", MicroTimers,
			func(m MicroResult) bool { return m.TimersPerSec >= targetTimersPerSec },
			func(m MicroResult) string { return fmt.Sprintf("%.2fM/s", m.TimersPerSec/1e6) }},
		{"0 allocs/op on ready reads and writes of hub TCP sockets (every backend)", MicroReadWrite,
			func(m MicroResult) bool { return m.AllocsPerOp == 0 },
			func(m MicroResult) string {
				s := fmt.Sprintf("%d allocs/op", m.AllocsPerOp)
				if m.Peer != "" && m.Peer != "hub" {
					s += " (" + m.Peer + " peer)"
				}
				return s
			}},
	}
	var out []Target
	for _, sp := range specs {
		t := Target{Name: sp.name, Status: "not measured"}
		var parts []string
		measured, allOK := 0, true
		for _, b := range backends {
			m, ok := microFind(ms, b, sp.bench)
			switch {
			case !ok:
				continue
			case m.NA != "":
				parts = append(parts, b+" [n/a]")
			case !m.OK():
				allOK = false
				parts = append(parts, b+" [failed]")
			default:
				measured++
				met := sp.ok(m)
				allOK = allOK && met
				parts = append(parts, fmt.Sprintf("%s %s [%s]", b, sp.figure(m), status(met)))
			}
		}
		switch {
		case measured > 0:
			t.Status = status(allOK)
			t.Detail = strings.Join(parts, ", ")
		case len(parts) > 0:
			t.Detail = strings.Join(parts, ", ")
		default:
			t.Detail = "micro-benchmarks not run (-micro 0); also: go test -run '^$' -bench BenchmarkBackends -benchmem ./conformance/"
		}
		out = append(out, t)
	}
	return out
}

// writeMicro writes the micro-benchmark table, with n/a reasons and
// failures under it; nothing when none ran.
func writeMicro(ew *errWriter, ms []MicroResult, benchtime time.Duration) {
	if len(ms) == 0 {
		return
	}
	fmt.Fprintf(ew, "\nLoop micro-benchmarks (testing.Benchmark, ~%v each; in-process, unpinned, before the server runs)\n", benchtime)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tPost rt ns\ttimers/s\tready→wake ns\tready R+W allocs/op\t")
	var backends []string
	for _, m := range ms {
		if !slices.Contains(backends, m.Backend) {
			backends = append(backends, m.Backend)
		}
	}
	var notes []string
	for _, b := range backends {
		row := []string{b}
		for _, name := range []string{MicroPost, MicroTimers, MicroWakeup, MicroReadWrite} {
			m, ok := microFind(ms, b, name)
			switch {
			case !ok:
				row = append(row, "—")
				continue
			case m.NA != "":
				row = append(row, "n/a")
				notes = append(notes, fmt.Sprintf("  n/a  %s %s: %s", b, name, m.NA))
				continue
			case !m.OK():
				row = append(row, "FAILED")
				notes = append(notes, fmt.Sprintf("  FAIL %s %s: %s", b, name, m.Err))
				continue
			}
			switch name {
			case MicroTimers:
				row = append(row, thousands(m.TimersPerSec))
			case MicroReadWrite:
				cell := strconv.FormatInt(m.AllocsPerOp, 10)
				if m.Peer != "" && m.Peer != "hub" {
					cell += " (" + m.Peer + " peer)"
				}
				row = append(row, cell)
			default:
				row = append(row, thousands(m.NsPerOp))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
	fmt.Fprintln(ew, "Post rt: Post from another goroutine until the posted function signals back. timers/s: 100,000 timers")
	fmt.Fprintln(ew, "scheduled and fired per op. ready→wake: a byte written, the loop's level watcher reads it and wakes a")
	fmt.Fprintln(ew, "parked goroutine. R+W allocs/op: a 64-byte Write + io.ReadFull on ready hub TCP sockets (stdlib peer:")
	fmt.Fprintln(ew, "the backend cannot dial, so the hub side writes and reads against a net.Dial peer).")
	for _, n := range notes {
		fmt.Fprintln(ew, n)
	}
}

// writeMicroBenchstat writes the micro-benchmarks in the Go benchmark
// format, named as go test names BenchmarkBackends' sub-benchmarks.
func writeMicroBenchstat(ew *errWriter, ms []MicroResult) {
	for _, m := range ms {
		if !m.OK() {
			continue
		}
		fmt.Fprintf(ew, "BenchmarkBackends/backend=%s/%s\t%d\t%.1f ns/op", m.Backend, m.Name, m.N, m.NsPerOp)
		if m.TimersPerSec != 0 {
			fmt.Fprintf(ew, "\t%.0f timers/s", m.TimersPerSec)
		}
		fmt.Fprintf(ew, "\t%d B/op\t%d allocs/op\n", m.BytesPerOp, m.AllocsPerOp)
	}
}
