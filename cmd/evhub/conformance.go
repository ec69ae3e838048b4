package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

func init() {
	register("conformance", "run the conformance suite and print the backend × area matrix", runConformance)
	register("compare", "the main job: conformance matrix and bench table for every backend", runCompare)
	register("__conformance", "internal: run the suite for one backend under package testing", runConformanceChild)
}

// The suite runs under package testing in a child process, one per
// backend, so that every case gets a real *testing.T (nettest.TestConn
// needs one) and a backend that crashes cannot take the others with it.
func runConformanceChild(args []string) error {
	fs := flag.NewFlagSet("__conformance", flag.ContinueOnError)
	backend := fs.String("backend", "", "backend")
	run := fs.String("run", "", "test filter")
	if err := fs.Parse(args); err != nil {
		return err
	}
	os.Args = []string{os.Args[0], "-test.v", "-test.timeout=15m"}
	if *run != "" {
		os.Args = append(os.Args, "-test.run", *run)
	}
	name := *backend
	testing.Main(func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) },
		[]testing.InternalTest{{Name: "TestConformance", F: func(t *testing.T) {
			t.Run("loop", func(t *testing.T) {
				conformance.TestLoop(t, func() (loop.Loop, error) { return loop.Open(name) })
			})
			t.Run("net", func(t *testing.T) {
				conformance.TestNetwork(t, func() (conformance.Network, func() error, error) {
					h, err := evhub.Open(name)
					if err != nil {
						return nil, nil, err
					}
					return h, h.Close, nil
				})
			})
			t.Run("tasks", func(t *testing.T) {
				conformance.TestCooperative(t, func() (*scheduler.Hub, error) { return evhub.Open(name) })
			})
			t.Run("reactor", func(t *testing.T) {
				conformance.TestReactor(t, func() (loop.Loop, error) { return loop.Open(name) })
			})
		}}}, nil, nil)
	return nil
}

// result is one backend's outcome per area.
type result struct {
	backend string
	areas   map[string]*areaResult
	crashed string
}

type areaResult struct {
	pass, fail, na int
	reasons        map[string]bool
	failed         []string
}

var (
	reRun    = regexp.MustCompile(`^=== (?:RUN|CONT|NAME)\s+(\S+)`)
	reResult = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)
	reNA     = regexp.MustCompile(`^\s+\S+\.go:\d+: (n/a: .*)$`)
)

// runSuite runs the child for one backend and classifies leaf cases by
// area ("loop/post", "net/tcp", ...).
func runSuite(ctx context.Context, backend string, verbose io.Writer, progress func(done int)) result {
	res := result{backend: backend, areas: map[string]*areaResult{}}
	exe, err := os.Executable()
	if err != nil {
		res.crashed = err.Error()
		return res
	}
	cmd := exec.CommandContext(ctx, exe, "__conformance", "-backend", backend)
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	out, err := cmd.StdoutPipe()
	if err != nil {
		res.crashed = err.Error()
		return res
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		res.crashed = err.Error()
		return res
	}
	type leaf struct{ status, reason string }
	leaves := map[string]*leaf{}
	parents := map[string]bool{}
	current := ""
	var tail []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	done := 0
	for sc.Scan() {
		line := sc.Text()
		if verbose != nil {
			fmt.Fprintln(verbose, line)
		}
		if tail = append(tail, line); len(tail) > 30 {
			tail = tail[1:]
		}
		if m := reRun.FindStringSubmatch(line); m != nil {
			current = m[1]
			if i := strings.LastIndex(current, "/"); i > 0 {
				parents[current[:i]] = true
			}
			continue
		}
		if m := reNA.FindStringSubmatch(line); m != nil && current != "" {
			l := leaves[current]
			if l == nil {
				l = &leaf{}
				leaves[current] = l
			}
			l.reason = m[1]
			continue
		}
		if m := reResult.FindStringSubmatch(line); m != nil {
			l := leaves[m[2]]
			if l == nil {
				l = &leaf{}
				leaves[m[2]] = l
			}
			l.status = m[1]
			done++
			if progress != nil {
				progress(done)
			}
		}
	}
	werr := cmd.Wait()
	for name, l := range leaves {
		if parents[name] || l.status == "" {
			continue
		}
		parts := strings.Split(name, "/")
		// TestConformance/<half>/<area>/<case...>
		if len(parts) < 4 {
			continue
		}
		area := parts[1] + "/" + parts[2]
		a := res.areas[area]
		if a == nil {
			a = &areaResult{reasons: map[string]bool{}}
			res.areas[area] = a
		}
		switch {
		case l.status == "PASS":
			a.pass++
		case l.status == "SKIP" && strings.HasPrefix(l.reason, "n/a: "):
			a.na++
			a.reasons[strings.TrimPrefix(l.reason, "n/a: ")] = true
		default:
			// A failure, or a skip that is not a declared n/a: both
			// count against the backend.
			a.fail++
			a.failed = append(a.failed, strings.Join(parts[2:], "/")+" ("+strings.ToLower(l.status)+")")
		}
	}
	if werr != nil && len(res.areas) == 0 || (werr != nil && !anyFail(res)) {
		res.crashed = fmt.Sprintf("suite process failed (%v); last output:\n  %s", werr, strings.Join(tail, "\n  "))
	}
	return res
}

func anyFail(r result) bool {
	for _, a := range r.areas {
		if a.fail > 0 {
			return true
		}
	}
	return false
}

func (a *areaResult) cell() string {
	switch {
	case a.fail > 0:
		return fmt.Sprintf("FAIL %d/%d", a.fail, a.pass+a.fail+a.na)
	case a.pass == 0 && a.na > 0:
		return "n/a"
	case a.na > 0:
		return fmt.Sprintf("pass %d, n/a %d", a.pass, a.na)
	}
	return fmt.Sprintf("pass %d", a.pass)
}

// printMatrix writes the backend × area table and the n/a reasons and
// failures under it. It reports whether every backend passed.
func printMatrix(w io.Writer, results []result) bool {
	areaSet := map[string]bool{}
	for _, r := range results {
		for a := range r.areas {
			areaSet[a] = true
		}
	}
	areas := make([]string, 0, len(areaSet))
	for a := range areaSet {
		areas = append(areas, a)
	}
	sort.Strings(areas)
	tw := newTable(append([]string{"area"}, backendsOf(results)...))
	for _, area := range areas {
		row := []string{area}
		for _, r := range results {
			if a := r.areas[area]; a != nil {
				row = append(row, a.cell())
			} else {
				row = append(row, "-")
			}
		}
		tw.add(row...)
	}
	tw.write(w)
	fmt.Fprintln(w, `"pass N": every case passed; "n/a": the backend declares the capability missing (reason below); "-": an optional extra the backend does not offer (not part of the contract)`)
	ok := true
	for _, r := range results {
		if r.crashed != "" {
			ok = false
			fmt.Fprintf(w, "\n%s: %s\n", r.backend, r.crashed)
		}
		for _, area := range areas {
			a := r.areas[area]
			if a == nil {
				continue
			}
			for reason := range a.reasons {
				fmt.Fprintf(w, "  n/a  %s %s: %s\n", r.backend, area, reason)
			}
			for _, f := range a.failed {
				ok = false
				fmt.Fprintf(w, "  FAIL %s %s: %s\n", r.backend, area, f)
			}
		}
	}
	return ok
}

func backendsOf(results []result) []string {
	out := make([]string, len(results))
	for i, r := range results {
		out[i] = r.backend
	}
	return out
}

func pickBackends(name string) ([]string, error) {
	if name == "" {
		return loop.Names(), nil
	}
	for _, n := range loop.Names() {
		if n == name {
			return []string{name}, nil
		}
	}
	return nil, fmt.Errorf("unknown backend %q (compiled in: %s)", name, strings.Join(loop.Names(), ", "))
}

func conformanceMatrix(w io.Writer, backends []string, verbose bool) bool {
	var results []result
	for _, b := range backends {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "conformance %s: running", b)
		var v io.Writer
		if verbose {
			v = os.Stderr
		}
		r := runSuite(context.Background(), b, v, func(done int) {
			if !verbose && done%25 == 0 {
				fmt.Fprintf(os.Stderr, "\rconformance %s: %d cases", b, done)
			}
		})
		fmt.Fprintf(os.Stderr, "\rconformance %s: done in %.1fs          \n", b, time.Since(start).Seconds())
		results = append(results, r)
	}
	return printMatrix(w, results)
}

func runConformance(args []string) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	backend := fs.String("backend", "", "run only this backend (default: every compiled-in one)")
	verbose := fs.Bool("v", false, "print the suite's output as it runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bs, err := pickBackends(*backend)
	if err != nil {
		return err
	}
	if !conformanceMatrix(os.Stdout, bs, *verbose) {
		return fmt.Errorf("conformance failures (see above)")
	}
	return nil
}

func runCompare(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	backend := fs.String("backend", "", "compare only this backend (default: every compiled-in one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bs, err := pickBackends(*backend)
	if err != nil {
		return err
	}
	fmt.Println("== conformance (backend × area) ==")
	ok := conformanceMatrix(os.Stdout, bs, false)
	if compareBench != nil {
		fmt.Println("\n== performance ==")
		if err := compareBench(os.Stdout, fs.Args()); err != nil {
			return err
		}
	}
	if !ok {
		return fmt.Errorf("conformance failures (see above)")
	}
	return nil
}

// table is a small aligned text table.
type table struct {
	rows [][]string
}

func newTable(header []string) *table { return &table{rows: [][]string{header}} }

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	widths := make([]int, len(t.rows[0]))
	for _, r := range t.rows {
		for i, c := range r {
			if len(c) > widths[i] {
				widths[i] = len(c)
			}
		}
	}
	for ri, r := range t.rows {
		for i, c := range r {
			fmt.Fprintf(w, "| %-*s ", widths[i], c)
		}
		fmt.Fprintln(w, "|")
		if ri == 0 {
			for i := range r {
				fmt.Fprintf(w, "|%s", strings.Repeat("-", widths[i]+2))
			}
			fmt.Fprintln(w, "|")
		}
	}
}
