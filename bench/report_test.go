package bench

import (
	"bufio"
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMedian(t *testing.T) {
	assert.Equal(t, 0.0, median(nil))
	assert.Equal(t, 5.0, median([]float64{5}))
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
	xs := []float64{3, 1, 2}
	median(xs)
	assert.Equal(t, []float64{3, 1, 2}, xs, "median leaves its input alone")
}

func TestRatios(t *testing.T) {
	assert.Equal(t, 2.0, higher(200, 100))
	assert.Equal(t, 0.5, lower(20, 10), "twice the CPU is half as good")
	assert.Equal(t, 0.0, higher(0, 100))
	assert.Equal(t, 0.0, lower(10, 0))
	assert.Equal(t, "1.23×", ratio(1.234))
	assert.Equal(t, "—", ratio(0))
	assert.Equal(t, "1,234,568", thousands(1234567.6))
	assert.Equal(t, "999", thousands(999))
	assert.Equal(t, "-1,000", thousands(-1000))
	assert.Equal(t, "12.3", us(12345))
	assert.Equal(t, "1234", us(1234000))
}

// fakeRows registers nothing: it builds a config over test-only servers.
func fakeConfig() *Config {
	mk := func(name string, kind Kind, backend, raw string) *Server {
		return &Server{Name: name, Kind: kind, Backend: backend, Raw: raw, Protocols: Echo}
	}
	pp64, _ := LookupWorkload("pingpong-64")
	pp1k, _ := LookupWorkload("pingpong-1000")
	idle, _ := LookupWorkload("idle-10000")
	return &Config{
		Workloads: []Workload{pp64, pp1k, idle},
		Servers: []*Server{
			mk("stdlib", Baseline, "netpoll", ""),
			mk("gnet", Baseline, "gnet", ""),
			mk("evhub-gnet", Evhub, "gnet", "gnet"),
			mk("evhub-netpoll", Evhub, "netpoll", "stdlib"),
		},
		Reps: 3, Duration: 1e9, Command: "evhub bench -test",
	}
}

func fakeReport() *Report {
	r := &Report{Machine: Machine{CPU: "Test CPU", Cores: 2, Kernel: "Linux 6.0", GoVersion: "go1.26", Commit: "abc", GOOS: "linux", GOARCH: "amd64"},
		Config: ReportConfig{Command: "evhub bench -test", MeasureMS: 1000}}
	add := func(w, s string, rts, cpu []float64) {
		for i := range rts {
			r.Samples = append(r.Samples, Sample{Workload: w, Server: s, Rep: i, RoundTripsPerSec: rts[i],
				P50: 10000, P99: 50000, P999: 90000, ServerCPUPerRT: cpu[i], ServerCPUFrac: 0.8, LoadCPUFrac: 1, Conns: 64})
		}
	}
	for _, w := range []string{"pingpong-64", "pingpong-1000"} {
		add(w, "stdlib", []float64{100, 90, 110}, []float64{12000, 11000, 13000})
		add(w, "gnet", []float64{100, 100, 100}, []float64{10000, 10000, 10000})
		add(w, "evhub-gnet", []float64{120, 80, 100}, []float64{10000, 11000, 12000})
		add(w, "evhub-netpoll", []float64{110, 110, 110}, []float64{11000, 11000, 11000})
	}
	// One failed run: excluded from the medians.
	r.Samples = append(r.Samples, Sample{Workload: "pingpong-64", Server: "evhub-gnet", Rep: 3, Err: "server evhub-gnet died mid-run (exit status 3)"})
	for i, b := range []float64{4000, 3000, 5000} {
		r.Samples = append(r.Samples, Sample{Workload: "idle-10000", Server: "stdlib", Rep: i, BytesPerConn: b, Conns: 10000})
		r.Samples = append(r.Samples, Sample{Workload: "idle-10000", Server: "gnet", Rep: i, BytesPerConn: b / 8, Conns: 10000})
		r.Samples = append(r.Samples, Sample{Workload: "idle-10000", Server: "evhub-gnet", Rep: i, BytesPerConn: b / 2, Conns: 10000})
	}
	for i := range 3 {
		r.Samples = append(r.Samples, Sample{Workload: "idle-10000", Server: "evhub-netpoll", Rep: i, Err: "load generator: dial connection 5 of 10000: refused"})
	}
	return r
}

func TestSummarize(t *testing.T) {
	cfg := fakeConfig()
	r := fakeReport()
	r.summarize(cfg)

	std, ok := r.result("pingpong-64", "stdlib")
	require.True(t, ok)
	assert.Equal(t, 100.0, std.RoundTripsPerSec)
	assert.Equal(t, 12000.0, std.ServerCPUPerRT)
	assert.Equal(t, 1.0, std.TputVsStdlib)
	assert.Equal(t, 0.0, std.CPUVsRaw, "a baseline has no raw reference")

	eg, ok := r.result("pingpong-64", "evhub-gnet")
	require.True(t, ok)
	assert.Equal(t, 3, eg.Runs)
	assert.Equal(t, 1, eg.Failed)
	assert.Equal(t, 100.0, eg.RoundTripsPerSec)
	assert.Equal(t, 11000.0, eg.ServerCPUPerRT)
	assert.InDelta(t, 1.0, eg.TputVsStdlib, 1e-9)
	assert.InDelta(t, 12000.0/11000, eg.CPUVsStdlib, 1e-9)
	assert.InDelta(t, 10000.0/11000, eg.CPUVsRaw, 1e-9)

	en, _ := r.result("pingpong-64", "evhub-netpoll")
	assert.InDelta(t, 1.1, en.TputVsStdlib, 1e-9)
	assert.InDelta(t, en.CPUVsStdlib, en.CPUVsRaw, 1e-9, "netpoll's raw reference is stdlib")

	idle, _ := r.result("idle-10000", "evhub-gnet")
	assert.Equal(t, 2000.0, idle.BytesPerConn)
	assert.Equal(t, 2.0, idle.MemVsStdlib)
	assert.Equal(t, 0.25, idle.MemVsRaw)
	dead, _ := r.result("idle-10000", "evhub-netpoll")
	assert.False(t, dead.OK())
	assert.Equal(t, 3, dead.Failed)
	assert.Len(t, r.Failures(), 4)

	// Targets: evhub-netpoll is the best backend (1.1× rt/s, 1.09× CPU).
	require.NotEmpty(t, r.Targets)
	assert.Equal(t, "met", r.Targets[0].Status)
	assert.Contains(t, r.Targets[0].Detail, "evhub-netpoll")
	var gnetTarget *Target
	for i := range r.Targets {
		if strings.HasPrefix(r.Targets[i].Name, "evhub-gnet ≥ 0.9× raw gnet") {
			gnetTarget = &r.Targets[i]
		}
	}
	require.NotNil(t, gnetTarget)
	assert.Equal(t, "met", gnetTarget.Status, "10/11 = 0.91")
	assert.Contains(t, gnetTarget.Detail, "pingpong-64 0.91×")
	// No micro-benchmark ran: the three loop-level targets are not measured.
	for _, last := range r.Targets[len(r.Targets)-3:] {
		assert.Equal(t, "not measured", last.Status, last.Name)
		assert.Contains(t, last.Detail, "BenchmarkBackends")
	}
}

func TestWriteText(t *testing.T) {
	cfg := fakeConfig()
	r := fakeReport()
	r.summarize(cfg)
	var b bytes.Buffer
	require.NoError(t, r.WriteText(&b, cfg))
	out := b.String()
	assert.Contains(t, out, "pingpong-64 — 64-byte ping-pong, 64 connections")
	assert.Contains(t, out, "srv µs/rt")
	assert.Contains(t, out, "evhub-gnet (1 failed)")
	assert.Regexp(t, `evhub-netpoll\s+FAILED\s+—\s+—\n`, out)
	assert.Contains(t, out, "died mid-run")
	assert.Contains(t, out, "Machine: Test CPU, 2 cores, Linux 6.0, go1.26, commit abc")
	assert.Contains(t, out, "Command: evhub bench -test")
	assert.Contains(t, out, "[met]")
	// The dead server's row never shows figures.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "evhub-netpoll") && strings.Contains(line, "FAILED") {
			assert.NotContains(t, line, "×")
		}
	}
}

func TestWriteBenchstat(t *testing.T) {
	cfg := fakeConfig()
	r := fakeReport()
	r.summarize(cfg)
	var b bytes.Buffer
	require.NoError(t, r.WriteBenchstat(&b))
	sc := bufio.NewScanner(&b)
	var benches int
	config := map[string]string{}
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Benchmark") {
			k, v, ok := strings.Cut(line, ": ")
			require.True(t, ok, "config line %q", line)
			config[k] = v
			continue
		}
		benches++
		f := strings.Fields(line)
		// name, iterations, then value-unit pairs: the format benchstat reads.
		require.GreaterOrEqual(t, len(f), 4, line)
		assert.Equal(t, 0, (len(f)-2)%2, line)
		assert.Regexp(t, `^BenchmarkEcho/workload=[a-z0-9-]+/server=[a-z0-9-]+$`, f[0])
		assert.Regexp(t, `^[1-9][0-9]*$`, f[1])
		assert.NotContains(t, line, "died")
	}
	assert.Equal(t, 3*4*2+3*3, benches, "one line per successful run")
	assert.Equal(t, "Test CPU", config["cpu"])
	assert.Equal(t, "abc", config["commit"])
}

func TestWriteOutCharts(t *testing.T) {
	cfg := fakeConfig()
	r := fakeReport()
	r.summarize(cfg)
	dir := t.TempDir()
	require.NoError(t, r.WriteOut(dir, cfg))
	for _, f := range []string{"results.txt", "results.json", "report.txt",
		"pingpong-64.svg", "pingpong-64.png", "pingpong-1000.png", "idle-10000.svg", "idle-10000.png",
		"summary.svg", "summary.png"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Positive(t, st.Size(), f)
	}
	f, err := os.Open(filepath.Join(dir, "pingpong-64.png"))
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), 300)
	summary, err := os.ReadFile(filepath.Join(dir, "summary.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(summary), "server CPU per round trip (µs), 64 connections")
	assert.Contains(t, string(summary), "server RSS per idle connection (bytes), 10,000 connections")
	svg, err := os.ReadFile(filepath.Join(dir, "idle-10000.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(svg), "<svg")
}

func TestWriteSummary(t *testing.T) {
	cfg := fakeConfig()
	r := fakeReport()
	r.summarize(cfg)
	var b bytes.Buffer
	require.NoError(t, r.WriteSummary(&b, cfg))
	out := b.String()
	lines := strings.Split(out, "\n")
	var hdr, std, dead string
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "server":
			hdr = l
		case len(f) > 0 && f[0] == "stdlib" && std == "":
			std = l
		case len(f) > 0 && f[0] == "evhub-netpoll" && dead == "":
			dead = l
		}
	}
	assert.Equal(t, []string{"server", "@64", "@1000", "@64", "@1000", "10000"}, strings.Fields(hdr))
	assert.Equal(t, []string{"stdlib", "100", "100", "12.0", "12.0", "4,000"}, strings.Fields(std))
	assert.Equal(t, []string{"evhub-netpoll", "110", "110", "11.0", "11.0", "FAILED"}, strings.Fields(dead))
	assert.Contains(t, out, "Targets:")
	assert.Contains(t, out, "Failed runs (4")
}

func TestPlainProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, 2)
	p.describe("pingpong-1 stdlib")
	p.add()
	p.describe("pingpong-1 gnet")
	p.add()
	p.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "[1/2")
	assert.Contains(t, lines[1], "[2/2")
	assert.Contains(t, lines[1], "pingpong-1 gnet")
	assert.NotContains(t, b.String(), "\r")
	newProgress(nil, 3).describe("nothing") // no writer, no output, no panic
}

func TestTargetOneIgnoresTaskRows(t *testing.T) {
	cfg := fakeConfig()
	cfg.Servers = append(cfg.Servers, &Server{Name: "evhub-gnet-task", Kind: EvhubTasks, Backend: "gnet", Raw: "gnet", Protocols: Echo})
	r := fakeReport()
	for _, w := range []string{"pingpong-64", "pingpong-1000"} {
		r.Samples = append(r.Samples, Sample{Workload: w, Server: "evhub-gnet-task", RoundTripsPerSec: 500, ServerCPUPerRT: 5000, P50: 1, P99: 1, P999: 1})
	}
	r.summarize(cfg)
	assert.Contains(t, r.Targets[0].Detail, "evhub-netpoll —", "the goroutine-mode target takes goroutine rows only")
	var found bool
	for _, tg := range r.Targets {
		if strings.HasPrefix(tg.Name, "evhub-gnet-task ≥ 0.9× raw gnet") {
			found = true
			assert.Equal(t, "met", tg.Status)
		}
	}
	assert.True(t, found, "task rows are held to the raw-library target too")
	tr, _ := r.result("pingpong-64", "evhub-gnet-task")
	assert.Equal(t, "evhub-tasks", tr.Kind)
	assert.Equal(t, 2.0, tr.CPUVsRaw)
}
