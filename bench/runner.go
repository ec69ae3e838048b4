package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evhub/evhub/internal/pin"
)

// Spawner builds the command that runs a child role ("serve" or "load")
// with args. The default re-executes this binary as "evhub __serve ARGS" /
// "evhub __load ARGS"; tests re-execute the test binary.
type Spawner func(role string, args []string) (*exec.Cmd, error)

// SelfSpawner re-executes the running binary with the subcommand "__"+role.
func SelfSpawner(role string, args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return exec.Command(exe, append([]string{"__" + role}, args...)...), nil
}

// Sample is the outcome of one run: one workload against one server.
type Sample struct {
	Workload string `json:"workload"`
	Server   string `json:"server"`
	Rep      int    `json:"rep"`
	// Err is why the run produced no figures ("" when it did).
	Err string `json:"error,omitempty"`

	RoundTripsPerSec float64 `json:"rt_per_s,omitempty"`
	P50              int64   `json:"p50_ns,omitempty"`
	P99              int64   `json:"p99_ns,omitempty"`
	P999             int64   `json:"p999_ns,omitempty"`
	// ServerCPUPerRT is the server's CPU time per round trip, nanoseconds.
	ServerCPUPerRT float64 `json:"server_cpu_ns_per_rt,omitempty"`
	// ServerCPUFrac and LoadCPUFrac are the fractions of one CPU that the
	// server and the load generator used over the window.
	ServerCPUFrac float64 `json:"server_cpu_frac,omitempty"`
	LoadCPUFrac   float64 `json:"load_cpu_frac,omitempty"`
	// Idle workload: server RSS before and with the idle connections, and
	// the difference per connection. The baseline is taken after a
	// warm-up (idleWarm connections served and closed), so that what the
	// first connection costs once (the code that serves it paged in, a
	// ring's or a pool's first pages) is not counted per connection;
	// RSSFresh is the process's RSS before the warm-up.
	RSSFresh     int64   `json:"rss_fresh,omitempty"`
	RSSBefore    int64   `json:"rss_before,omitempty"`
	RSSIdle      int64   `json:"rss_idle,omitempty"`
	BytesPerConn float64 `json:"bytes_per_idle_conn,omitempty"`
	Conns        int     `json:"conns,omitempty"`
	// SetupMS is how long the load generator took to connect (and, for the
	// idle workload, to echo once on every connection).
	SetupMS int64 `json:"setup_ms,omitempty"`
}

// OK reports whether the run produced figures.
func (s Sample) OK() bool { return s.Err == "" }

// child is a running child process with line-oriented pipes.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout lines; closed at EOF
	exited chan struct{}
	err    error // set before exited is closed
	stderr *tailBuffer
}

// startChild starts a role pinned to cpu, with GOMAXPROCS=1.
func startChild(spawn Spawner, name, role string, args []string, cpu int) (*child, error) {
	cmd, err := spawn(role, args)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "GOMAXPROCS=1", childEnv+"=1")
	// Pipes as *os.File, so no copying goroutine stands between the child
	// and us and Wait never races our reads.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s: pipe: %w", name, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("%s: pipe: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: inW, lines: make(chan string, 16), exited: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	// The protocol runs on fd 3 so that whatever a library prints on
	// stdout (gnet logs there) cannot be mistaken for it; stdout and stderr
	// are kept for the error report.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, c.stderr, c.stderr
	cmd.ExtraFiles = []*os.File{outW}
	err = pin.Start(cmd, cpu)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		defer close(c.lines)
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// diedErr describes an exit that nobody asked for.
func (c *child) diedErr() error {
	msg := strings.TrimSpace(c.stderr.String())
	if msg != "" {
		msg = ": " + oneLine(msg)
	}
	state := "exited"
	if c.err != nil {
		state = c.err.Error()
	}
	return fmt.Errorf("%s died mid-run (%s)%s", c.name, state, msg)
}

// next returns the next stdout line, failing if the child exits, other
// exits (the peer child), or the timeout passes.
func (c *child) next(timeout time.Duration, other *child) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var otherExit <-chan struct{}
	if other != nil {
		otherExit = other.exited
	}
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.exited
			return "", c.diedErr()
		}
		return line, nil
	case <-otherExit:
		return "", other.diedErr()
	case <-t.C:
		return "", fmt.Errorf("%s: no answer within %v", c.name, timeout)
	}
}

func (c *child) send(cmd string) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		select {
		case <-c.exited:
			return c.diedErr()
		case <-time.After(time.Second):
		}
		return fmt.Errorf("%s: send %q: %w", c.name, cmd, err)
	}
	return nil
}

// stop asks the child to quit, then kills it if it does not within grace.
func (c *child) stop(quit string, grace time.Duration) {
	if quit != "" {
		_, _ = io.WriteString(c.stdin, quit+"\n")
	}
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	for range c.lines {
	}
}

// usage asks a server child for its own resource use.
func (c *child) usage(other *child) (Usage, error) {
	if err := c.send("stat"); err != nil {
		return Usage{}, err
	}
	for {
		line, err := c.next(10*time.Second, other)
		if err != nil {
			return Usage{}, err
		}
		if msg, ok := strings.CutPrefix(line, "error "); ok {
			return Usage{}, fmt.Errorf("%s: %s", c.name, msg)
		}
		if strings.HasPrefix(line, "stat ") {
			return parseUsage(line)
		}
	}
}

// runOne runs workload w against server s once and returns its sample; an
// error means the run produced no figures.
func runOne(ctx context.Context, cfg *Config, w Workload, s *Server) (Sample, error) {
	smp := Sample{Workload: w.Name, Server: s.Name}
	addr := "127.0.0.1:" + strconv.Itoa(cfg.Port)
	srv, err := startChild(cfg.Spawn, "server "+s.Name, "serve",
		[]string{"-server", s.Name, "-proto", protoName(w.Proto), "-addr", addr}, cfg.ServerCPU)
	if err != nil {
		return smp, err
	}
	defer srv.stop("quit", 3*time.Second)

	line, err := srv.next(20*time.Second, nil)
	if err != nil {
		return smp, err
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		if cfg.Port != 0 && strings.Contains(msg, "address already in use") {
			// Every later run would fail the same way.
			return smp, fmt.Errorf("%w: -port %d: %s (server %s)", errBind, cfg.Port, msg, s.Name)
		}
		return smp, fmt.Errorf("server %s: %s", s.Name, msg)
	}
	bound, ok := strings.CutPrefix(line, "ready ")
	if !ok {
		return smp, fmt.Errorf("server %s: unexpected first line %q", s.Name, line)
	}

	var fresh, before Usage
	if w.Mode == Idle {
		// Let the fresh process settle before its RSS is read.
		time.Sleep(200 * time.Millisecond)
		if fresh, err = srv.usage(nil); err != nil {
			return smp, err
		}
	}
	spec := LoadSpec{Addr: bound, Workload: w, Warmup: cfg.Warmup, Duration: cfg.Duration, IdleHold: 2 * time.Minute}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return smp, fmt.Errorf("encode load spec: %w", err)
	}
	ld, err := startChild(cfg.Spawn, "load generator", "load", []string{"-spec", string(specJSON)}, cfg.LoadCPU)
	if err != nil {
		return smp, err
	}
	defer ld.stop("", 5*time.Second)

	// Each phase is bounded; connecting 10,000 sockets is the longest.
	timeout := cfg.Warmup + cfg.Duration + 60*time.Second
	var u0, u1 Usage
	for {
		if err := ctx.Err(); err != nil {
			return smp, err
		}
		line, err := ld.next(timeout, srv)
		if err != nil {
			return smp, preferDeath(srv, err)
		}
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "warm":
			// The warm-up's connections are closed: let the server finish
			// with them before the baseline.
			time.Sleep(200 * time.Millisecond)
			if before, err = srv.usage(ld); err != nil {
				return smp, err
			}
			if err := ld.send("go"); err != nil {
				return smp, err
			}
		case "connected":
		case "start":
			if u0, err = srv.usage(ld); err != nil {
				return smp, err
			}
		case "stop":
			// The load keeps running until "finish", so the server is
			// sampled while still busy.
			if u1, err = srv.usage(ld); err != nil {
				return smp, err
			}
			if err := ld.send("finish"); err != nil {
				return smp, err
			}
		case "idle":
			// Let the server finish setting the connections up.
			time.Sleep(300 * time.Millisecond)
			after, err := srv.usage(ld)
			if err != nil {
				return smp, err
			}
			n, _ := strconv.Atoi(rest)
			if n <= 0 {
				return smp, fmt.Errorf("load generator: bad idle line %q", line)
			}
			if before.RSS == 0 {
				return smp, fmt.Errorf("load generator: idle before warm")
			}
			smp.Conns, smp.RSSFresh, smp.RSSBefore, smp.RSSIdle = n, fresh.RSS, before.RSS, after.RSS
			smp.BytesPerConn = float64(after.RSS-before.RSS) / float64(n)
			if err := ld.send("release"); err != nil {
				return smp, err
			}
		case "error":
			return smp, preferDeath(srv, fmt.Errorf("load generator: %s", rest))
		case "result":
			var res LoadResult
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				return smp, fmt.Errorf("load generator: bad result: %w", err)
			}
			// The server must still be alive: figures from a server that
			// died during the run are not results.
			select {
			case <-srv.exited:
				return smp, srv.diedErr()
			default:
			}
			smp.SetupMS = res.Setup.Milliseconds()
			if w.Mode == Idle {
				if smp.Conns == 0 {
					return smp, fmt.Errorf("load generator: result before idle")
				}
				return smp, nil
			}
			return fill(smp, res, u0, u1)
		default:
			return smp, fmt.Errorf("load generator: unexpected line %q", line)
		}
	}
}

// preferDeath returns the server's death as the error when the load
// generator's error (a reset connection, usually) came from it.
func preferDeath(srv *child, err error) error {
	// A live server that stopped answering has often run out of fds: look
	// before the load generator's connections close.
	open, limit, near := fdPressure(srv.cmd.Process.Pid)
	select {
	case <-srv.exited:
		return fmt.Errorf("%w; %v", srv.diedErr(), err)
	case <-time.After(time.Second):
	}
	if near {
		return fmt.Errorf("%w (the server holds %d open fds against its limit of %d: EMFILE)", err, open, limit)
	}
	return err
}

// fill computes a ping-pong sample from the load result and the server's
// usage at the start and the end of the window. The server's samples are
// taken when it answers, a little off the load's window, so its CPU is
// taken as a rate over its own interval.
func fill(smp Sample, res LoadResult, u0, u1 Usage) (Sample, error) {
	if u0.Mono == 0 || u1.Mono <= u0.Mono {
		return smp, fmt.Errorf("server usage not sampled around the window")
	}
	rtps := res.RoundTripsPerSec()
	if rtps <= 0 {
		return smp, fmt.Errorf("no round trips measured")
	}
	cpuRate := float64(u1.CPU()-u0.CPU()) / float64(u1.Mono-u0.Mono)
	smp.RoundTripsPerSec = rtps
	smp.P50, smp.P99, smp.P999 = res.P50, res.P99, res.P999
	smp.ServerCPUFrac = cpuRate
	smp.ServerCPUPerRT = cpuRate / rtps * 1e9
	smp.LoadCPUFrac = float64(res.LoadCPU) / float64(res.Window)
	smp.Conns = res.Conns
	return smp, nil
}

// plan is the interleaved order of runs: repetition by repetition, each
// workload in turn, with the servers rotated by one each repetition so that
// no row always runs first or last.
type planned struct {
	rep int
	w   Workload
	s   *Server
}

func plan(cfg *Config) []planned {
	var out []planned
	for rep := range cfg.Reps {
		for _, w := range cfg.Workloads {
			rows := serversFor(w, cfg.Servers)
			for i := range rows {
				out = append(out, planned{rep: rep, w: w, s: rows[(i+rep)%len(rows)]})
			}
		}
	}
	return out
}

// Run executes every planned run and returns the report. It stops early
// only when ctx is done; a failed run is recorded in the report.
func Run(ctx context.Context, cfg *Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	rep := &Report{Machine: DescribeMachine(), Config: cfg.describe()}
	runs := plan(cfg)
	var micro []string
	if cfg.Micro > 0 {
		micro = microBackends(cfg.Servers)
	}
	prog := newProgress(cfg.Progress, len(runs)+len(micro)*len(microBenches))
	defer prog.finish()
	// The micro-benchmarks first, while this process is otherwise idle:
	// they run here (testing.Benchmark), unpinned, and count the whole
	// process's allocations.
	if len(micro) > 0 {
		ms, err := runMicro(ctx, micro, cfg.Micro, prog)
		if err != nil {
			return nil, err
		}
		rep.Micro = ms
	}
	for _, p := range runs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prog.describe(fmt.Sprintf("%-14s %-14s rep %d/%d", p.w.Name, p.s.Name, p.rep+1, cfg.Reps))
		smp, err := runOne(ctx, cfg, p.w, p.s)
		smp.Rep = p.rep
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			smp = Sample{Workload: p.w.Name, Server: p.s.Name, Rep: p.rep, Err: oneLine(err.Error())}
			if errors.Is(err, errBind) {
				return nil, err
			}
		}
		rep.Samples = append(rep.Samples, smp)
		prog.add()
	}
	rep.summarize(cfg)
	return rep, nil
}

// errBind marks a run that failed because the requested port could not be
// bound: every later run would fail the same way.
var errBind = errors.New("cannot bind")

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
