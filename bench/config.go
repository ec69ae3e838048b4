package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	backends "github.com/evhub/evhub/backends/all"
)

// Config is one bench run's settings, normally built by [ParseFlags].
type Config struct {
	Workloads []Workload
	// Servers are the rows, in display order.
	Servers  []*Server
	Reps     int
	Warmup   time.Duration
	Duration time.Duration
	// Port is the server port; 0 lets each server take a free one.
	Port int
	// ServerCPU and LoadCPU are the CPUs the server and the load generator
	// are pinned to; -1 leaves a child unpinned.
	ServerCPU, LoadCPU int
	// Out is a folder for results.txt, results.json, report.txt and the
	// charts; "" writes none.
	Out string
	// JSON prints the report as JSON instead of tables.
	JSON bool
	// Progress receives a progress bar; nil shows none.
	Progress io.Writer
	// Spawn starts child roles; nil means SelfSpawner.
	Spawn Spawner
	// Command is the command line recorded with the results.
	Command string
	// Micro is the benchtime of each loop micro-benchmark, run in this
	// process before the servers; 0 runs none.
	Micro time.Duration
}

// Limits on flag values: beyond them a run is a typo, not a plan.
const (
	maxReps     = 100
	maxDuration = 10 * time.Minute
)

// defaults of the two entry points.
type mode struct {
	name      string
	workloads string
	reps      int
	warmup    time.Duration
	duration  time.Duration
	micro     time.Duration
}

var (
	benchMode   = mode{name: "bench", workloads: "all", reps: 1, warmup: 500 * time.Millisecond, duration: 2 * time.Second, micro: 500 * time.Millisecond}
	fullMode    = mode{name: "bench -full", workloads: "all", reps: 3, warmup: time.Second, duration: 5 * time.Second, micro: time.Second}
	compareMode = mode{name: "compare", workloads: "quick", reps: 1, warmup: 250 * time.Millisecond, duration: time.Second, micro: 200 * time.Millisecond}
)

// ParseFlags parses the flags of `evhub bench` (name "bench") or of the
// bench part of `evhub compare` (name "compare") and validates them. Every
// problem is one clear line.
func ParseFlags(name string, args []string) (*Config, error) {
	def := benchMode
	if name == "compare" {
		def = compareMode
	}
	fs := flag.NewFlagSet("evhub "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	full := fs.Bool("full", false, "every workload, 3 repetitions of 5 s each")
	backends := fs.String("backend", "all", "comma-separated evhub backends to bench (with the baselines they are compared to)")
	wl := fs.String("workload", def.workloads, "comma-separated workloads, or all (every one) / quick (compare's)")
	// The defaults depend on -full, so they are applied after parsing; a
	// flag given explicitly is validated as given (-duration 0 is an error).
	dur := fs.Duration("duration", def.duration, "measured time per run (with -full: "+fullMode.duration.String()+")")
	warm := fs.Duration("warmup", def.warmup, "warm-up per run, not measured (with -full: "+fullMode.warmup.String()+")")
	reps := fs.Int("reps", def.reps, "repetitions of every run; the median is quoted (with -full: "+strconv.Itoa(fullMode.reps)+")")
	micro := fs.Duration("micro", def.micro, "benchtime of each loop micro-benchmark, run in-process first; 0 skips them (bench: "+benchMode.micro.String()+", with -full: "+fullMode.micro.String()+")")
	port := fs.Int("port", 0, "server port on 127.0.0.1 (0: a free port per server)")
	cpus := fs.String("cpus", "0,1", "SERVER,LOAD CPUs to pin the two processes to, or \"none\"")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	out := fs.String("out", "", "folder for results.txt (benchstat), results.json, report.txt and one chart per workload")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp{usage(fs, name)}
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *full {
		def = fullMode
	}
	cfg := &Config{
		Reps:     def.reps,
		Warmup:   def.warmup,
		Duration: def.duration,
		Port:     *port,
		JSON:     *asJSON,
		Out:      *out,
		Command:  strings.TrimSpace("evhub " + name + " " + strings.Join(args, " ")),
	}
	// Errors carry no "evhub bench:" prefix: the command adds it.
	bad := fmt.Errorf
	if !set["workload"] {
		*wl = def.workloads
	}
	var err error
	if cfg.Workloads, err = parseWorkloads(*wl); err != nil {
		return nil, err
	}
	if cfg.Servers, err = selectServers(*backends); err != nil {
		return nil, err
	}
	if name == "compare" && !*full {
		cfg.Servers = slices.DeleteFunc(cfg.Servers, func(s *Server) bool { return s.NotInCompare })
	}
	if set["duration"] {
		cfg.Duration = *dur
	}
	if cfg.Duration <= 0 || cfg.Duration > maxDuration {
		return nil, bad("-duration %v out of range (0, %v]", cfg.Duration, maxDuration)
	}
	if set["warmup"] {
		cfg.Warmup = *warm
	}
	if cfg.Warmup < 0 {
		return nil, bad("-warmup %v is negative", cfg.Warmup)
	}
	if cfg.Warmup > maxDuration {
		return nil, bad("-warmup %v out of range [0, %v]", cfg.Warmup, maxDuration)
	}
	cfg.Micro = def.micro
	if set["micro"] {
		cfg.Micro = *micro
	}
	if cfg.Micro < 0 || cfg.Micro > maxDuration {
		return nil, bad("-micro %v out of range [0, %v]", cfg.Micro, maxDuration)
	}
	if set["reps"] {
		cfg.Reps = *reps
	}
	if cfg.Reps < 1 || cfg.Reps > maxReps {
		return nil, bad("-reps %d out of range [1, %d]", cfg.Reps, maxReps)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, bad("-port %d out of range [0, 65535]", cfg.Port)
	}
	if cfg.ServerCPU, cfg.LoadCPU, err = parseCPUs(*cpus); err != nil {
		return nil, err
	}
	return cfg, nil
}

// errHelp carries the usage text for -h.
type errHelp struct{ text string }

func (e errHelp) Error() string { return e.text }

func usage(fs *flag.FlagSet, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: evhub %s [flags]\n", name)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fmt.Fprintf(&b, "workloads: %s\n", strings.Join(WorkloadNames(), ", "))
	fmt.Fprintf(&b, "backends: %s\n", strings.Join(Backends(), ", "))
	return b.String()
}

// selectServers returns the rows for a -backend list: each named backend's
// rows (evhub and raw), and always the stdlib row every ratio refers to.
func selectServers(list string) ([]*Server, error) {
	all := Servers()
	known := Backends()
	want := map[string]bool{}
	for _, b := range splitList(list) {
		if b == "all" {
			for _, k := range known {
				want[k] = true
			}
			continue
		}
		if !slices.Contains(known, b) {
			hint := ""
			if slices.Contains(backends.Preference(), b) {
				hint = fmt.Sprintf("; %s is linked only in a build with -tags %s", b, b)
			}
			return nil, fmt.Errorf("unknown backend %q (compiled in: %s%s)", b, strings.Join(known, ", "), hint)
		}
		want[b] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no backend selected (compiled in: %s)", strings.Join(known, ", "))
	}
	var out []*Server
	for _, s := range all {
		if s.Name == StdlibRow || want[s.Backend] {
			out = append(out, s)
		}
	}
	return out, nil
}

// parseCPUs parses "S,L" (or "none") and checks both CPUs are ours to use.
func parseCPUs(s string) (int, int, error) {
	if s == "none" {
		return -1, -1, nil
	}
	a, b, ok := strings.Cut(s, ",")
	sv, err1 := strconv.Atoi(strings.TrimSpace(a))
	lv, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || sv < 0 || lv < 0 {
		return 0, 0, fmt.Errorf("-cpus %q: want SERVER,LOAD CPU numbers, e.g. 0,1, or none", s)
	}
	allowed, err := allowedCPUs()
	if err != nil {
		return 0, 0, err
	}
	for _, c := range []int{sv, lv} {
		if !slices.Contains(allowed, c) {
			return 0, 0, fmt.Errorf("-cpus %q: CPU %d is not available (this process may use %v)", s, c, allowed)
		}
	}
	return sv, lv, nil
}

// check validates a Config built by hand (ParseFlags' are valid) and fills
// in defaults.
func (c *Config) check() error {
	switch {
	case len(c.Workloads) == 0:
		return errors.New("bench: no workload")
	case len(c.Servers) == 0:
		return errors.New("bench: no server")
	case c.Reps < 1:
		return fmt.Errorf("bench: %d repetitions", c.Reps)
	case c.Duration <= 0 || c.Warmup < 0:
		return fmt.Errorf("bench: duration %v, warm-up %v", c.Duration, c.Warmup)
	case c.Micro < 0:
		return fmt.Errorf("bench: micro-benchmark time %v", c.Micro)
	}
	if c.Spawn == nil {
		c.Spawn = SelfSpawner
	}
	if c.Out != "" {
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			return fmt.Errorf("-out: %w", err)
		}
	}
	if c.Port != 0 {
		// A port that cannot be bound fails now, in one line, rather than
		// once per run.
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.Port))
		if err != nil {
			return fmt.Errorf("-port %d: %w", c.Port, err)
		}
		_ = ln.Close()
	}
	return nil
}

// ReportConfig is the part of a Config recorded with the results.
type ReportConfig struct {
	Command   string   `json:"command"`
	Workloads []string `json:"workloads"`
	Servers   []string `json:"servers"`
	Reps      int      `json:"reps"`
	WarmupMS  int64    `json:"warmup_ms"`
	MeasureMS int64    `json:"duration_ms"`
	ServerCPU int      `json:"server_cpu"`
	LoadCPU   int      `json:"load_cpu"`
	// MicroMS is the benchtime of each loop micro-benchmark; 0: none ran.
	MicroMS int64 `json:"micro_benchtime_ms,omitempty"`
}

func (c *Config) describe() ReportConfig {
	rc := ReportConfig{
		Command:   c.Command,
		Reps:      c.Reps,
		WarmupMS:  c.Warmup.Milliseconds(),
		MeasureMS: c.Duration.Milliseconds(),
		ServerCPU: c.ServerCPU,
		LoadCPU:   c.LoadCPU,
		MicroMS:   c.Micro.Milliseconds(),
	}
	for _, w := range c.Workloads {
		rc.Workloads = append(rc.Workloads, w.Name)
	}
	for _, s := range c.Servers {
		rc.Servers = append(rc.Servers, s.Name)
	}
	return rc
}
