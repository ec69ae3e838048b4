package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func init() {
	// A server that dies mid-run: it echoes for a moment, then exits, the
	// way a crashing server would. Registered in the test binary, which is
	// also the child.
	Register(Server{
		Name:      "test-dies",
		Kind:      Evhub,
		Backend:   "test",
		Raw:       StdlibRow,
		Protocols: Echo,
		Doc:       "test only: exits 300 ms after starting",
		Start: func(p Protocol, addr string) (net.Addr, error) {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, err
			}
			time.AfterFunc(300*time.Millisecond, func() { fatal(fmt.Errorf("test server crashed on purpose")) })
			return StartListener(p, ln)
		},
	})
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func testCPUs(t *testing.T) (int, int) {
	cpus, err := allowedCPUs()
	require.NoError(t, err)
	if len(cpus) < 2 {
		return -1, -1
	}
	return cpus[0], cpus[1]
}

func smallWorkload(name string, conns int) Workload {
	w, ok := LookupWorkload(name)
	if !ok {
		panic(name)
	}
	w.Conns = conns
	return w
}

// TestEndToEnd runs one echo workload for about a second against stdlib
// and raw gnet, HTTP against stdlib, and a small idle workload, each in
// real pinned child processes, and checks every figure is there.
func TestEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sc, lc := testCPUs(t)
	std, _ := Lookup(StdlibRow)
	gn, _ := Lookup("gnet")
	cfg := &Config{
		Workloads: []Workload{smallWorkload("pingpong-64", 8), smallWorkload("http-64", 4), smallWorkload("idle-10000", 200)},
		Servers:   []*Server{std, gn},
		Reps:      1,
		Warmup:    100 * time.Millisecond,
		Duration:  500 * time.Millisecond,
		ServerCPU: sc, LoadCPU: lc,
		Spawn:   testSpawner,
		Command: "go test",
		Out:     t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	fds := openFDs(t)
	rep, err := Run(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, fds, openFDs(t), "every pipe to the children is closed")
	var out bytes.Buffer
	require.NoError(t, rep.WriteText(&out, cfg))
	t.Log(out.String())
	require.Empty(t, rep.Failures())
	require.NoError(t, rep.WriteOut(cfg.Out, cfg))
	require.Len(t, rep.Samples, 5, "pingpong and idle on both rows, HTTP on stdlib")
	s := rep.Samples[0]
	require.True(t, s.OK(), s.Err)
	assert.Equal(t, "pingpong-64", s.Workload)
	assert.Positive(t, s.RoundTripsPerSec)
	assert.Positive(t, s.P50)
	assert.GreaterOrEqual(t, s.P99, s.P50)
	assert.GreaterOrEqual(t, s.P999, s.P99)
	assert.Positive(t, s.ServerCPUPerRT)
	assert.Less(t, s.ServerCPUPerRT, 10e6, "server CPU per round trip under 10 ms")
	assert.Equal(t, 8, s.Conns)
	for _, s := range rep.Samples {
		if s.Workload == "idle-10000" {
			assert.Equal(t, 200, s.Conns)
			assert.Positive(t, s.RSSIdle)
			// Both baselines are read: the fresh process's, then the
			// warmed-up one the figure is measured from.
			assert.Positive(t, s.RSSFresh)
			assert.Positive(t, s.RSSBefore)
			assert.InDelta(t, float64(s.RSSIdle-s.RSSBefore)/200, s.BytesPerConn, 1e-9)
		}
	}
	g, ok := rep.result("pingpong-64", "gnet")
	require.True(t, ok)
	assert.Positive(t, g.CPUVsStdlib)
	assert.Positive(t, g.TputVsStdlib)

	text := out.String()
	for _, want := range []string{"pingpong-64", "http-64", "idle-10000", "stdlib", "gnet", "B/idle conn", "Machine:"} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "FAILED")
	assert.NotContains(t, text, "Failed runs")
	// gnet speaks no HTTP: its row is absent from that table.
	httpTable := text[strings.Index(text, "http-64 —"):strings.Index(text, "idle-10000 —")]
	assert.NotContains(t, httpTable, "gnet")
}

// TestServerDiesMidRun: figures of a server that died are never shown as a
// result; the run reports it and the command exits non-zero.
func TestServerDiesMidRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sc, lc := testCPUs(t)
	dies, ok := Lookup("test-dies")
	require.True(t, ok)
	std, _ := Lookup(StdlibRow)
	cfg := &Config{
		Workloads: []Workload{smallWorkload("pingpong-64", 4)},
		Servers:   []*Server{std, dies},
		Reps:      1,
		Warmup:    100 * time.Millisecond,
		Duration:  time.Second,
		ServerCPU: sc, LoadCPU: lc,
		Spawn: testSpawner,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := RunAndReport(ctx, &out, cfg, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 of 2 runs failed")
	text := out.String()
	assert.Contains(t, text, "test-dies")
	assert.Contains(t, text, "FAILED")
	assert.Contains(t, text, "died mid-run")
	assert.Contains(t, text, "test server crashed on purpose")
}

// TestChildIsPinned: the server child runs on exactly the CPU asked for,
// with GOMAXPROCS=1.
func TestChildIsPinned(t *testing.T) {
	sc, _ := testCPUs(t)
	if sc < 0 {
		t.Skip("platform: fewer than two CPUs available to pin to")
	}
	cpus, _ := allowedCPUs()
	target := cpus[len(cpus)-1]
	c, err := startChild(testSpawner, "server stdlib", "serve", []string{"-server", StdlibRow, "-addr", "127.0.0.1:0"}, target)
	require.NoError(t, err)
	defer c.stop("quit", 3*time.Second)
	line, err := c.next(10*time.Second, nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "ready 127.0.0.1:"), line)
	got, err := cpusAllowed(c.cmd.Process.Pid)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(target), got)
	assert.Contains(t, c.cmd.Env, "GOMAXPROCS=1")
	// Our own affinity is back to what it was.
	after, err := allowedCPUs()
	require.NoError(t, err)
	assert.Equal(t, cpus, after)
	_ = runtime.NumCPU()
}

func TestServeMainErrors(t *testing.T) {
	var out bytes.Buffer
	assert.ErrorContains(t, ServeMain([]string{"-server", "nope"}, strings.NewReader(""), &out), `unknown server "nope"`)
	assert.ErrorContains(t, ServeMain([]string{"-server", "gnet", "-proto", "http"}, strings.NewReader(""), &out), "does not speak http")
	assert.ErrorContains(t, ServeMain([]string{"-server", "stdlib", "-proto", "ftp"}, strings.NewReader(""), &out), `unknown protocol "ftp"`)
	var ld bytes.Buffer
	assert.ErrorContains(t, LoadMain([]string{"-spec", "{"}, strings.NewReader(""), &ld), "bad -spec")
}

// TestCompareNamesItsChartFolder: without -out, compare writes its data
// and charts to a new folder under the temporary directory and names it
// on its last line of output.
func TestCompareNamesItsChartFolder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	err := runWith(&out, "compare", []string{"-backend", "gnet", "-workload", "pingpong-1",
		"-duration", "300ms", "-warmup", "50ms", "-micro", "0", "-cpus", "none"}, testSpawner)
	require.NoError(t, err, out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	dirs, err := filepath.Glob(filepath.Join(tmp, "evhub-compare-*"))
	require.NoError(t, err)
	require.Len(t, dirs, 1, "one new folder under $TMPDIR")
	assert.True(t, strings.HasSuffix(last, " to "+dirs[0]), "the last line names the folder: %q", last)
	for _, f := range []string{"summary.png", "summary.svg", "pingpong-1.png", "results.json", "report.txt"} {
		st, err := os.Stat(filepath.Join(dirs[0], f))
		if assert.NoError(t, err, f) {
			assert.Positive(t, st.Size(), f)
		}
	}
}
