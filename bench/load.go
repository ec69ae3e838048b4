package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// LoadSpec is what the orchestrator asks of a load generator child.
type LoadSpec struct {
	Addr     string        `json:"addr"`
	Workload Workload      `json:"workload"`
	Warmup   time.Duration `json:"warmup"`
	Duration time.Duration `json:"duration"`
	// IdleHold bounds how long idle connections are held waiting for
	// "release" on stdin.
	IdleHold time.Duration `json:"idle_hold"`
}

// LoadResult is what a load generator child reports.
type LoadResult struct {
	// RoundTrips completed inside the measured window (requests answered,
	// for pipelined workloads).
	RoundTrips int64 `json:"round_trips"`
	// Window is the measured time.
	Window time.Duration `json:"window_ns"`
	// Latency percentiles of one request, in nanoseconds.
	P50  int64 `json:"p50_ns"`
	P99  int64 `json:"p99_ns"`
	P999 int64 `json:"p999_ns"`
	Max  int64 `json:"max_ns"`
	// LoadCPU is the load generator's own CPU time over the window: near the
	// window means the generator, not the server, was the bottleneck.
	LoadCPU time.Duration `json:"load_cpu_ns"`
	// Conns is the number of connections that were established.
	Conns int `json:"conns"`
	// Setup is how long dialling (and, for idle, the first echo) took.
	Setup time.Duration `json:"setup_ns"`
}

// RoundTripsPerSec is RoundTrips over Window.
func (r LoadResult) RoundTripsPerSec() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.RoundTrips) / r.Window.Seconds()
}

// Phases of a ping-pong run. In phaseDrain the window is over but the load
// goes on, unrecorded, until the orchestrator has sampled the server
// ("finish" on stdin): the server must still be busy when it answers, or
// its CPU rate would be diluted by idle time.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDrain
	phaseStop
)

// drainMax bounds phaseDrain if "finish" never comes.
const drainMax = 10 * time.Second

// latencyMax is the largest latency the histogram holds (larger values are
// clamped to it).
const latencyMax = int64(60 * time.Second)

// LoadMain is the load generator child role. args carry "-spec JSON" (a
// LoadSpec). It reports progress on stdout, one line each: "connected",
// "start" and "stop" around the measured window (the orchestrator samples
// the server's CPU on each, then sends "finish" on stdin, until which the
// load goes on unrecorded), "idle N" for the idle workload (then it holds
// the connections until "release" arrives on stdin), and finally
// "result JSON" (a LoadResult) or "error MSG".
func LoadMain(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	specJSON := fs.String("spec", "", "LoadSpec as JSON")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	var spec LoadSpec
	if err := json.Unmarshal([]byte(*specJSON), &spec); err != nil {
		return fmt.Errorf("load: bad -spec: %w", err)
	}
	raiseFDLimit()
	var conns []net.Conn
	// Connections close only after the outcome is reported, so that the
	// orchestrator can still look at the server as the load left it.
	defer func() { closeAll(conns) }()
	res, err := runLoad(spec, stdin, stdout, &conns)
	if err != nil {
		fmt.Fprintf(stdout, "error %s\n", oneLine(err.Error()))
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("load: encode result: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "result %s\n", b)
	return err
}

// runLoad drives the workload; it leaves the connections it opened in
// *keep for the caller to close.
func runLoad(spec LoadSpec, stdin io.Reader, stdout io.Writer, keep *[]net.Conn) (LoadResult, error) {
	w := spec.Workload
	if w.Conns < 1 || w.Depth < 1 || (w.Proto == Echo && w.Size < 1) {
		return LoadResult{}, fmt.Errorf("load: impossible workload %+v", w)
	}
	if w.Mode == Idle {
		return runIdle(spec, stdin, stdout, keep)
	}
	if spec.Duration <= 0 || spec.Warmup < 0 {
		return LoadResult{}, fmt.Errorf("load: impossible duration %v / warm-up %v", spec.Duration, spec.Warmup)
	}
	t0 := time.Now()
	conns, err := dialAll(spec.Addr, w.Conns, 1, nil)
	*keep = conns
	if err != nil {
		return LoadResult{}, err
	}
	res := LoadResult{Conns: len(conns), Setup: time.Since(t0)}
	fmt.Fprintln(stdout, "connected")

	// Every blocking call is bounded: a server that stops answering fails
	// the run instead of hanging it.
	deadline := time.Now().Add(spec.Warmup + spec.Duration + drainMax + 10*time.Second)
	for _, c := range conns {
		_ = c.SetDeadline(deadline)
	}
	var (
		phase atomic.Int32
		count atomic.Int64
		hmu   sync.Mutex
		hist  = hdrhistogram.New(1000, latencyMax, 3)
		wg    sync.WaitGroup
		errc  = make(chan error, len(conns))
	)
	record := func(d int64) {
		if phase.Load() != phaseMeasure {
			return
		}
		count.Add(1)
		hmu.Lock()
		_ = hist.RecordValue(min(max(d, 1000), latencyMax))
		hmu.Unlock()
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if w.Proto == HTTP {
				err = httpWorker(c, &phase, record)
			} else {
				err = echoWorker(c, w.Size, w.Depth, &phase, record)
			}
			if err != nil && phase.Load() != phaseStop {
				errc <- fmt.Errorf("connection %d: %w", i, err)
			}
		}()
	}
	fail := func(err error) (LoadResult, error) {
		phase.Store(phaseStop)
		closeAll(conns)
		wg.Wait()
		return LoadResult{}, err
	}
	select {
	case err := <-errc:
		return fail(fmt.Errorf("during warm-up: %w", err))
	case <-time.After(spec.Warmup):
	}
	u0, err := selfUsage()
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	phase.Store(phaseMeasure)
	fmt.Fprintln(stdout, "start")
	select {
	case err := <-errc:
		return fail(err)
	case <-time.After(spec.Duration):
	}
	phase.Store(phaseDrain)
	res.Window = time.Since(start)
	u1, err := selfUsage()
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, "stop")
	res.LoadCPU = time.Duration(u1.CPU() - u0.CPU())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() && sc.Text() != "finish" {
		}
	}()
	select {
	case <-finished: // or stdin closed: the orchestrator is gone
	case err := <-errc:
		return fail(fmt.Errorf("after the window: %w", err))
	case <-time.After(drainMax):
	}
	phase.Store(phaseStop)
	// Workers finish their round trip in flight; closing unblocks any that
	// the server left hanging.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		closeAll(conns)
		<-done
	}
	select {
	case err := <-errc:
		return LoadResult{}, err
	default:
	}
	hmu.Lock()
	defer hmu.Unlock()
	res.RoundTrips = count.Load()
	res.P50 = hist.ValueAtQuantile(50)
	res.P99 = hist.ValueAtQuantile(99)
	res.P999 = hist.ValueAtQuantile(99.9)
	res.Max = hist.Max()
	if res.RoundTrips == 0 {
		return LoadResult{}, fmt.Errorf("no round trip completed in %v", res.Window)
	}
	return res, nil
}

// echoWorker sends depth requests of size bytes in one write and reads the
// echoes back, timing each request from the write to the arrival of its
// last byte, until the phase is phaseStop.
func echoWorker(c net.Conn, size, depth int, phase *atomic.Int32, record func(int64)) error {
	req := make([]byte, size*depth)
	for i := range req {
		req[i] = byte(i/size + i)
	}
	resp := make([]byte, len(req))
	for round := 0; phase.Load() != phaseStop; round++ {
		t0 := time.Now()
		if _, err := c.Write(req); err != nil {
			return err
		}
		got, next := 0, size
		for got < len(resp) {
			n, err := c.Read(resp[got:])
			got += n
			if got >= next {
				d := int64(time.Since(t0))
				for ; got >= next; next += size {
					record(d)
				}
			}
			if err != nil && got < len(resp) {
				if errors.Is(err, io.EOF) {
					return fmt.Errorf("server closed the connection after %d of %d bytes", got, len(resp))
				}
				return err
			}
		}
		// A cheap check that the server echoes, not merely answers: the
		// whole buffer every 256th round.
		if round%256 == 0 && !bytes.Equal(req, resp) {
			return fmt.Errorf("echo mismatch")
		}
	}
	return nil
}

var httpRequest = []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: evhub-bench\r\n\r\n")

// httpWorker sends keep-alive GETs one at a time and reads each response.
func httpWorker(c net.Conn, phase *atomic.Int32, record func(int64)) error {
	br := bufio.NewReaderSize(c, 4096)
	for phase.Load() != phaseStop {
		t0 := time.Now()
		if _, err := c.Write(httpRequest); err != nil {
			return err
		}
		if err := readHTTPResponse(br); err != nil {
			return err
		}
		record(int64(time.Since(t0)))
	}
	return nil
}

// readHTTPResponse reads one HTTP/1.1 200 response with a Content-Length
// and discards its body.
func readHTTPResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read status line: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("unexpected status line %q", bytes.TrimSpace(line))
	}
	cl := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		if len(line) <= 2 {
			break
		}
		const key = "content-length:"
		if len(line) > len(key) && bytes.EqualFold(line[:len(key)], []byte(key)) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(line[len(key):])))
			if err != nil || n < 0 {
				return fmt.Errorf("bad Content-Length %q", bytes.TrimSpace(line))
			}
			cl = n
		}
	}
	if cl < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	if _, err := br.Discard(cl); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// idleParallel is how many connections the idle workload sets up at once.
const idleParallel = 32

// idleWarm is how many connections the idle workload serves and closes
// before the server's baseline RSS is read.
const idleWarm = idleParallel

// runIdle first warms the server up: idleWarm connections, each echoed
// once, closed, then "warm" on stdout and "go" awaited on stdin (the
// runner reads the baseline meanwhile). It then opens the connections a
// few at a time, echoes once on each so the server has accepted and set
// it up, reports "idle N", and holds them until "release" arrives on
// stdin (or IdleHold passes).
func runIdle(spec LoadSpec, stdin io.Reader, stdout io.Writer, keep *[]net.Conn) (LoadResult, error) {
	w := spec.Workload
	hold := spec.IdleHold
	if hold <= 0 {
		hold = 2 * time.Minute
	}
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	ping := bytes.Repeat([]byte{'i'}, w.Size)
	echoOnce := func(c net.Conn) error {
		// A loopback echo takes microseconds; seconds mean the server is stuck
		// (often out of fds), and the run fails soon rather than late.
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(ping); err != nil {
			return err
		}
		buf := make([]byte, len(ping))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		return c.SetDeadline(time.Time{})
	}
	warm, err := dialAll(spec.Addr, idleWarm, idleParallel, echoOnce)
	for _, c := range warm {
		if c != nil {
			_ = c.Close()
		}
	}
	if err != nil {
		return LoadResult{}, fmt.Errorf("warm-up: %w", err)
	}
	fmt.Fprintln(stdout, "warm")
	if err := awaitCmd(cmds, "go", hold); err != nil {
		return LoadResult{}, err
	}
	t0 := time.Now()
	conns, err := dialAll(spec.Addr, w.Conns, idleParallel, echoOnce)
	*keep = conns
	if err != nil {
		return LoadResult{}, err
	}
	res := LoadResult{Conns: len(conns), Setup: time.Since(t0)}
	fmt.Fprintf(stdout, "idle %d\n", len(conns))
	if err := awaitCmd(cmds, "release", hold); err != nil {
		return LoadResult{}, err
	}
	return res, nil
}

// awaitCmd waits for the line want among cmds (the runner's stdin), for
// at most hold.
func awaitCmd(cmds <-chan string, want string, hold time.Duration) error {
	timeout := time.After(hold)
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				return fmt.Errorf("stdin closed before %s", want)
			}
			if cmd == want {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no %s within %v", want, hold)
		}
	}
}

// dialAll opens n connections to addr, running each through setup if it is
// not nil, with at most `parallel` dials and setups in flight (a burst of
// thousands would overflow the server's accept queue and stall on SYN
// retransmits). On error it returns the connections opened so far.
func dialAll(addr string, n, parallel int, setup func(net.Conn) error) ([]net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conns := make([]net.Conn, n)
	var (
		next     atomic.Int64
		failed   atomic.Bool
		wg       sync.WaitGroup
		firstErr error
		once     sync.Once
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		failed.Store(true)
	}
	for range max(1, min(parallel, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					fail(fmt.Errorf("dial connection %d of %d: %w", i+1, n, err))
					return
				}
				conns[i] = c
				if setup != nil {
					if err := setup(c); err != nil {
						fail(fmt.Errorf("connection %d of %d: first echo: %w", i+1, n, err))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, firstErr
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}
