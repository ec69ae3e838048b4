package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a whole run: where, how, every sample, and the medians.
type Report struct {
	Machine Machine      `json:"machine"`
	Config  ReportConfig `json:"config"`
	Samples []Sample     `json:"samples"`
	Results []Result     `json:"results"`
	// Micro are the loop micro-benchmarks, run in the orchestrator before
	// the servers (none with -micro 0).
	Micro   []MicroResult `json:"micro,omitempty"`
	Targets []Target      `json:"targets"`
}

// Result is the median of one (workload, server) pair's successful runs,
// with its ratios to the stdlib row and to the raw library underneath.
type Result struct {
	Workload string `json:"workload"`
	Server   string `json:"server"`
	Kind     string `json:"kind"`
	Raw      string `json:"raw,omitempty"`
	// Runs is the number of successful runs the medians are taken over;
	// Failed counts the others.
	Runs   int      `json:"runs"`
	Failed int      `json:"failed,omitempty"`
	Errors []string `json:"errors,omitempty"`

	RoundTripsPerSec float64 `json:"rt_per_s,omitempty"`
	P50              float64 `json:"p50_ns,omitempty"`
	P99              float64 `json:"p99_ns,omitempty"`
	P999             float64 `json:"p999_ns,omitempty"`
	ServerCPUPerRT   float64 `json:"server_cpu_ns_per_rt,omitempty"`
	ServerCPUFrac    float64 `json:"server_cpu_frac,omitempty"`
	LoadCPUFrac      float64 `json:"load_cpu_frac,omitempty"`
	BytesPerConn     float64 `json:"bytes_per_idle_conn,omitempty"`

	// Ratios, "how many times as good as the reference", higher is better:
	// throughput row÷ref, CPU per round trip and bytes per connection
	// ref÷row. Zero when the reference has no figure.
	TputVsStdlib float64 `json:"tput_x_stdlib,omitempty"`
	CPUVsStdlib  float64 `json:"cpu_x_stdlib,omitempty"`
	CPUVsRaw     float64 `json:"cpu_x_raw,omitempty"`
	MemVsStdlib  float64 `json:"mem_x_stdlib,omitempty"`
	MemVsRaw     float64 `json:"mem_x_raw,omitempty"`
}

// OK reports whether at least one run succeeded.
func (r Result) OK() bool { return r.Runs > 0 }

// median of xs (the mean of the middle two for an even count); 0 if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// higher is a÷b, lower is b÷a: ratios where more is better; 0 if either
// side is missing.
func higher(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

func lower(a, b float64) float64 { return higher(b, a) }

// summarize computes Results (medians and ratios) and Targets from Samples.
func (r *Report) summarize(cfg *Config) {
	r.Results = nil
	for _, w := range cfg.Workloads {
		rows := serversFor(w, cfg.Servers)
		byName := map[string]*Result{}
		var results []Result
		for _, s := range rows {
			res := Result{Workload: w.Name, Server: s.Name, Kind: s.Kind.String(), Raw: s.Raw}
			var rt, p50, p99, p999, cpu, scpu, lcpu, mem []float64
			for _, smp := range r.Samples {
				if smp.Workload != w.Name || smp.Server != s.Name {
					continue
				}
				if !smp.OK() {
					res.Failed++
					res.Errors = append(res.Errors, smp.Err)
					continue
				}
				res.Runs++
				if w.Mode == Idle {
					mem = append(mem, smp.BytesPerConn)
					continue
				}
				rt = append(rt, smp.RoundTripsPerSec)
				p50 = append(p50, float64(smp.P50))
				p99 = append(p99, float64(smp.P99))
				p999 = append(p999, float64(smp.P999))
				cpu = append(cpu, smp.ServerCPUPerRT)
				scpu = append(scpu, smp.ServerCPUFrac)
				lcpu = append(lcpu, smp.LoadCPUFrac)
			}
			res.RoundTripsPerSec, res.P50, res.P99, res.P999 = median(rt), median(p50), median(p99), median(p999)
			res.ServerCPUPerRT, res.ServerCPUFrac, res.LoadCPUFrac = median(cpu), median(scpu), median(lcpu)
			res.BytesPerConn = median(mem)
			results = append(results, res)
		}
		for i := range results {
			byName[results[i].Server] = &results[i]
		}
		for i := range results {
			res := &results[i]
			if !res.OK() {
				continue
			}
			if std := byName[StdlibRow]; std != nil && std.OK() {
				res.TputVsStdlib = higher(res.RoundTripsPerSec, std.RoundTripsPerSec)
				res.CPUVsStdlib = lower(res.ServerCPUPerRT, std.ServerCPUPerRT)
				res.MemVsStdlib = lower(res.BytesPerConn, std.BytesPerConn)
			}
			if raw := byName[res.Raw]; raw != nil && raw.OK() {
				res.CPUVsRaw = lower(res.ServerCPUPerRT, raw.ServerCPUPerRT)
				res.MemVsRaw = lower(res.BytesPerConn, raw.BytesPerConn)
			}
		}
		r.Results = append(r.Results, results...)
	}
	r.Targets = append(targets(r.Results), microTargets(r.Micro)...)
}

// result finds the Result of (workload, server).
func (r *Report) result(workload, server string) (Result, bool) {
	for _, res := range r.Results {
		if res.Workload == workload && res.Server == server {
			return res, true
		}
	}
	return Result{}, false
}

// Failures lists the runs that produced no figures.
func (r *Report) Failures() []Sample {
	var out []Sample
	for _, s := range r.Samples {
		if !s.OK() {
			out = append(out, s)
		}
	}
	return out
}

// Target is where one of the bench's performance targets stands.
type Target struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "met", "not met", "not measured"
	Detail string `json:"detail"`
}

func targets(results []Result) []Target {
	get := func(w, s string) (Result, bool) {
		for _, r := range results {
			if r.Workload == w && r.Server == s && r.OK() {
				return r, true
			}
		}
		return Result{}, false
	}
	var evhubRows []string
	seen := map[string]bool{}
	for _, r := range results {
		// Target 1 is about goroutine-mode hub sockets; target 2 takes
		// both modes.
		if (r.Kind == Evhub.String() || r.Kind == EvhubTasks.String()) && !seen[r.Server] {
			seen[r.Server] = true
			evhubRows = append(evhubRows, r.Server)
		}
	}
	var out []Target

	// 1. Hub sockets on the best backend: ≥ 1.0× stdlib throughput at 64
	// and 1,000 connections, at no more server CPU per round trip. The best
	// backend is the one whose worst of those four ratios is highest.
	t1 := Target{Name: "hub sockets (best backend) ≥ 1.0× stdlib rt/s at 64 and 1,000 conns, at ≤ stdlib CPU/rt", Status: "not measured"}
	best, bestScore := "", -1.0
	for _, s := range evhubRows {
		if r, ok := get("pingpong-64", s); ok && r.Kind != Evhub.String() {
			continue
		}
		score := math.Inf(1)
		for _, w := range []string{"pingpong-64", "pingpong-1000"} {
			r, ok := get(w, s)
			if !ok || r.TputVsStdlib == 0 || r.CPUVsStdlib == 0 {
				score = -1
				break
			}
			score = min(score, r.TputVsStdlib, r.CPUVsStdlib)
		}
		if score > bestScore {
			best, bestScore = s, score
		}
	}
	if best == "" || bestScore < 0 {
		t1.Detail = "needs evhub rows and the stdlib row at pingpong-64 and pingpong-1000"
	} else {
		var parts []string
		for _, w := range []string{"pingpong-64", "pingpong-1000"} {
			r, _ := get(w, best)
			parts = append(parts, fmt.Sprintf("%s: rt/s %.2f×, CPU/rt %.2f× stdlib", w, r.TputVsStdlib, r.CPUVsStdlib))
		}
		t1.Status = status(bestScore >= 1.0)
		t1.Detail = best + " — " + strings.Join(parts, "; ")
	}
	out = append(out, t1)

	// 2. evhub over gnet, evio and libev ≥ 0.9× the raw library in server
	// CPU per round trip, on every workload both ran.
	for _, s := range evhubRows {
		var raw string
		for _, r := range results {
			if r.Server == s {
				raw = r.Raw
				break
			}
		}
		if raw == "" || raw == StdlibRow {
			continue
		}
		t := Target{Name: fmt.Sprintf("%s ≥ 0.9× raw %s in server CPU/rt", s, raw), Status: "not measured"}
		var parts []string
		worst := math.Inf(1)
		for _, r := range results {
			if r.Server != s || !r.OK() || r.CPUVsRaw == 0 {
				continue
			}
			worst = min(worst, r.CPUVsRaw)
			parts = append(parts, fmt.Sprintf("%s %.2f×", r.Workload, r.CPUVsRaw))
		}
		if len(parts) > 0 {
			t.Status = status(worst >= 0.9)
			t.Detail = strings.Join(parts, ", ")
		} else {
			t.Detail = "no workload with figures for both rows"
		}
		out = append(out, t)
	}
	return out
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// WriteText writes one table per workload, then the footer (legend, rows,
// targets, failures, machine).
func (r *Report) WriteText(w io.Writer, cfg *Config) error {
	ew := &errWriter{w: w}
	for _, wl := range cfg.Workloads {
		fmt.Fprintf(ew, "\n%s — %s (median of %d × %v, warm-up %v)\n", wl.Name, wl.Doc, cfg.Reps, cfg.Duration, cfg.Warmup)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		if wl.Mode == Idle {
			fmt.Fprintln(tw, "server\tB/idle conn\tmem ×stdlib\tmem ×raw\t")
		} else {
			fmt.Fprintln(tw, "server\trt/s\tp50 µs\tp99 µs\tp99.9 µs\tsrv µs/rt\tsrv CPU\tload CPU\trt/s ×stdlib\tCPU ×stdlib\tCPU ×raw\t")
		}
		for _, s := range serversFor(wl, cfg.Servers) {
			res, ok := r.result(wl.Name, s.Name)
			if !ok {
				continue
			}
			if !res.OK() {
				// As many cells as a full row, so the columns stay aligned.
				cols := 10
				if wl.Mode == Idle {
					cols = 3
				}
				fmt.Fprintf(tw, "%s\tFAILED%s\t\n", s.Name, strings.Repeat("\t—", cols-1))
				continue
			}
			name := s.Name
			if res.Failed > 0 {
				name += fmt.Sprintf(" (%d failed)", res.Failed)
			}
			if wl.Mode == Idle {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, thousands(res.BytesPerConn), ratio(res.MemVsStdlib), ratio(res.MemVsRaw))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%.0f%%\t%.0f%%\t%s\t%s\t%s\t\n", name,
				thousands(res.RoundTripsPerSec), us(res.P50), us(res.P99), us(res.P999),
				res.ServerCPUPerRT/1e3, res.ServerCPUFrac*100, res.LoadCPUFrac*100,
				ratio(res.TputVsStdlib), ratio(res.CPUVsStdlib), ratio(res.CPUVsRaw))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(ew, "\n× columns: times as good as the reference, higher is better (rt/s row÷ref; CPU/rt and bytes ref÷row).")
	fmt.Fprintln(ew, "×raw: against the baseline on the same library (evhub-netpoll against stdlib). srv/load CPU: share of one core over the window.")
	r.writeFooter(ew, cfg)
	return ew.err
}

// WriteSummary writes the short form that evhub compare prints: one table,
// a row per server, round trips per second and server CPU per round trip
// for each ping-pong workload and bytes per idle connection, then the
// footer.
func (r *Report) WriteSummary(w io.Writer, cfg *Config) error {
	ew := &errWriter{w: w}
	var busy, idle []Workload
	for _, wl := range cfg.Workloads {
		if wl.Mode == Idle {
			idle = append(idle, wl)
		} else {
			busy = append(busy, wl)
		}
	}
	label := func(wl Workload) string {
		if n, ok := strings.CutPrefix(wl.Name, "pingpong-"); ok {
			return "@" + n
		}
		return wl.Name
	}
	fmt.Fprintf(ew, "\nPerformance (median of %d × %v per row; @N = 64-byte ping-pong on N connections)\n", cfg.Reps, cfg.Duration)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Two header lines: the quantity, then the workload.
	head1, head2 := []string{""}, []string{"server"}
	for i, wl := range busy {
		head1 = append(head1, map[bool]string{true: "rt/s", false: ""}[i == 0])
		head2 = append(head2, label(wl))
	}
	for i, wl := range busy {
		head1 = append(head1, map[bool]string{true: "server µs/rt", false: ""}[i == 0])
		head2 = append(head2, label(wl))
	}
	for i, wl := range idle {
		head1 = append(head1, map[bool]string{true: "B/idle conn", false: ""}[i == 0])
		head2 = append(head2, strings.TrimPrefix(wl.Name, "idle-"))
	}
	fmt.Fprintln(tw, strings.Join(head1, "\t")+"\t")
	fmt.Fprintln(tw, strings.Join(head2, "\t")+"\t")
	cell := func(wl Workload, s *Server, f func(Result) string) string {
		res, ok := r.result(wl.Name, s.Name)
		switch {
		case !ok:
			return "—"
		case !res.OK():
			return "FAILED"
		}
		return f(res)
	}
	for _, s := range cfg.Servers {
		row := []string{s.Name}
		for _, wl := range busy {
			row = append(row, cell(wl, s, func(r Result) string { return thousands(r.RoundTripsPerSec) }))
		}
		for _, wl := range busy {
			row = append(row, cell(wl, s, func(r Result) string { return fmt.Sprintf("%.1f", r.ServerCPUPerRT/1e3) }))
		}
		for _, wl := range idle {
			row = append(row, cell(wl, s, func(r Result) string { return thousands(r.BytesPerConn) }))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(ew, "Server µs/rt is the fair figure: the load generator saturates first. Per-workload tables with")
	fmt.Fprintln(ew, "latency and ratios: evhub bench (add -out DIR for charts, JSON and benchstat text).")
	r.writeFooter(ew, cfg)
	return ew.err
}

func (r *Report) writeFooter(ew *errWriter, cfg *Config) {
	writeMicro(ew, r.Micro, time.Duration(r.Config.MicroMS)*time.Millisecond)
	fmt.Fprintln(ew, "\nRows:")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, s := range cfg.Servers {
		fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.Doc)
	}
	_ = tw.Flush()
	fmt.Fprintln(ew, "\nTargets:")
	for _, t := range r.Targets {
		fmt.Fprintf(ew, "  [%s] %s\n", t.Status, t.Name)
		if t.Detail != "" {
			fmt.Fprintf(ew, "      %s\n", t.Detail)
		}
	}
	if fails := r.Failures(); len(fails) > 0 {
		fmt.Fprintf(ew, "\nFailed runs (%d, excluded from the figures):\n", len(fails))
		for _, f := range fails {
			fmt.Fprintf(ew, "  %s / %s rep %d: %s\n", f.Workload, f.Server, f.Rep+1, f.Err)
		}
	}
	m := r.Machine
	fmt.Fprintf(ew, "\nMachine: %s, %d cores, %s, %s, commit %s, %s\n", m.CPU, m.Cores, m.Kernel, m.GoVersion, m.Commit, m.Date)
	fmt.Fprintf(ew, "Server pinned to CPU %d, load generator to CPU %d, GOMAXPROCS=1 in both; loopback TCP.\nCommand: %s\n", cfg.ServerCPU, cfg.LoadCPU, cfg.Command)
}

// WriteBenchstat writes every successful sample in the Go benchmark format
// that benchstat reads, one line per run, e.g.
//
//	BenchmarkEcho/workload=pingpong-64/server=stdlib  176000  11363 ns/op  88000 rt/s  ...
//
// so `benchstat -col /server results.txt` sets the rows side by side.
func (r *Report) WriteBenchstat(w io.Writer) error {
	ew := &errWriter{w: w}
	m := r.Machine
	fmt.Fprintf(ew, "goos: %s\ngoarch: %s\npkg: github.com/evhub/evhub/bench\ncpu: %s\n", m.GOOS, m.GOARCH, m.CPU)
	fmt.Fprintf(ew, "kernel: %s\ngo: %s\ncommit: %s\ndate: %s\ncommand: %s\n", m.Kernel, m.GoVersion, m.Commit, m.Date, r.Config.Command)
	for _, s := range r.Samples {
		if !s.OK() {
			continue
		}
		name := fmt.Sprintf("BenchmarkEcho/workload=%s/server=%s", s.Workload, s.Server)
		if s.BytesPerConn != 0 || s.RoundTripsPerSec == 0 {
			fmt.Fprintf(ew, "%s\t%d\t%.1f B/idle-conn\n", name, s.Conns, s.BytesPerConn)
			continue
		}
		n := int64(s.RoundTripsPerSec * float64(r.Config.MeasureMS) / 1e3)
		fmt.Fprintf(ew, "%s\t%d\t%.1f ns/op\t%.0f rt/s\t%d p50-ns\t%d p99-ns\t%d p99.9-ns\t%.1f srv-ns/rt\n",
			name, max(n, 1), 1e9/s.RoundTripsPerSec, s.RoundTripsPerSec, s.P50, s.P99, s.P999, s.ServerCPUPerRT)
	}
	writeMicroBenchstat(ew, r.Micro)
	return ew.err
}

// WriteJSON writes the whole report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteOut writes results.txt, results.json, report.txt, a chart per
// workload and summary.svg/summary.png (every row's server CPU per round
// trip and memory per idle connection) into dir.
func (r *Report) WriteOut(dir string, cfg *Config) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("%w", err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
		return nil
	}
	if err := write("results.txt", r.WriteBenchstat); err != nil {
		return err
	}
	if err := write("results.json", r.WriteJSON); err != nil {
		return err
	}
	if err := write("report.txt", func(w io.Writer) error { return r.WriteText(w, cfg) }); err != nil {
		return err
	}
	for _, wl := range cfg.Workloads {
		if err := r.chart(dir, wl, cfg); err != nil {
			return err
		}
	}
	return r.summaryChart(dir, cfg)
}

func ratio(x float64) string {
	if x == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}

func us(ns float64) string {
	switch {
	case ns == 0:
		return "—"
	case ns < 100e3:
		return fmt.Sprintf("%.1f", ns/1e3)
	}
	return fmt.Sprintf("%.0f", ns/1e3)
}

// thousands formats x rounded, with comma separators.
func thousands(x float64) string {
	neg := x < 0
	s := fmt.Sprintf("%.0f", math.Abs(x))
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// errWriter remembers the first write error so formatting code stays flat.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
