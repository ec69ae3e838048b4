package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

func init() {
	register("fuzz", "differential fuzzing of a backend's hub sockets against package net", runFuzz)
}

// runFuzz runs random operation sequences (conformance.Differential) on a
// hub of one backend and on the standard library until -ops operations or
// -duration have run, and stops at the first divergence, writing its input
// in the go test fuzz corpus format.
func runFuzz(args []string) error {
	fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
	backend := fs.String("backend", "netpoll", "backend to compare with net ("+fmt.Sprint(loop.Names())+")")
	ops := fs.Int64("ops", 1_000_000, "stop after this many operations (0: no limit)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	workers := fs.Int("workers", 8, "inputs run concurrently (most of an input's time is waiting: a deadline, a parked operation, a peer's FIN)")
	every := fs.Duration("interval", 10*time.Second, "progress report interval")
	out := fs.String("o", "", "file for a diverging input (default: fuzz-divergence-<seed>)")
	keepGoing := fs.Bool("keep-going", false, "count divergences by kind and go on (each kind's first input saved as <o>-<n>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ops <= 0 && *duration <= 0 {
		return fmt.Errorf("-ops or -duration must be positive")
	}
	h, err := evhub.Open(*backend)
	if err != nil {
		return err
	}
	defer h.Close()
	dir, err := os.MkdirTemp("", "evf")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var (
		nOps, nInputs atomic.Int64
		stop          atomic.Bool
		mu            sync.Mutex
		firstErr      error
		wg            sync.WaitGroup
		kinds         = map[string]int{}
		nDiv          atomic.Int64
	)
	name := *out
	if name == "" {
		name = fmt.Sprintf("fuzz-divergence-%d", *seed)
	}
	save := func(file string, in []byte) error {
		return os.WriteFile(file, []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(in))+")\n"), 0o644)
	}
	start := time.Now()
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(*seed, uint64(w)))
			for !stop.Load() {
				in := make([]byte, 2+r.IntN(62))
				for i := range in {
					in[i] = byte(r.Uint32())
				}
				k, err := conformance.Differential(h, dir, in)
				nOps.Add(int64(k))
				nInputs.Add(1)
				if err != nil {
					var d *conformance.Divergence
					mu.Lock()
					if *keepGoing && errors.As(err, &d) {
						nDiv.Add(1)
						k := divergenceKind(d)
						if kinds[k]++; kinds[k] == 1 {
							file := fmt.Sprintf("%s-%d", name, len(kinds))
							_ = save(file, in)
							fmt.Printf("new divergence kind %d (input %s):\n%v\n", len(kinds), file, d)
						}
						mu.Unlock()
						continue
					}
					if firstErr == nil {
						werr := save(name, in)
						firstErr = fmt.Errorf("%w\ninput saved to %s (copy it to conformance/testdata/fuzz/FuzzHubs/)", err, name)
						if werr != nil {
							firstErr = errors.Join(firstErr, werr)
						}
					}
					mu.Unlock()
					stop.Store(true)
				}
				if (*ops > 0 && nOps.Load() >= *ops) || (*duration > 0 && time.Since(start) >= *duration) {
					stop.Store(true)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(*every)
	defer tick.Stop()
	report := func() {
		el := time.Since(start)
		fmt.Printf("%-8s %8s  %12d ops  %9d inputs  %8.0f ops/s  divergences %d\n",
			*backend, el.Round(time.Second), nOps.Load(), nInputs.Load(), float64(nOps.Load())/el.Seconds(), nDiv.Load())
	}
	for {
		select {
		case <-tick.C:
			report()
			continue
		case <-done:
		}
		break
	}
	if firstErr != nil {
		return firstErr
	}
	report()
	if n := conformance.StrayDatagrams(); n > 0 {
		fmt.Printf("skipped %d udp datagrams from a third address (rule 8 in the conformance package's doc)\n", n)
	}
	if n := conformance.DeclaredDifferences(); n > 0 {
		fmt.Printf("%d outcomes showed a difference the backend declares (a missing capability: rule 9 in the conformance package's doc)\n", n)
	}
	if nDiv.Load() > 0 {
		for k, n := range kinds {
			fmt.Printf("  %6d × %s\n", n, k)
		}
		return fmt.Errorf("%d sequences of %d diverged from net", nDiv.Load(), nInputs.Load())
	}
	fmt.Printf("%s: %d operations in %d sequences (seed %d) with zero divergences from net\n", *backend, nOps.Load(), nInputs.Load(), *seed)
	return nil
}

// divergenceKind names a divergence by the operation and the two
// outcomes' first words, without sizes or hashes.
func divergenceKind(d *conformance.Divergence) string {
	cut := func(s string) string {
		if i := strings.Index(s, "; chain"); i >= 0 {
			s = s[:i]
		}
		return digits.ReplaceAllString(s, "N")
	}
	std, got := d.Std[len(d.Std)-1], ""
	if len(d.Got) > 0 {
		got = d.Got[len(d.Got)-1]
	}
	return d.Network + ": std " + cut(std) + " | got " + cut(got)
}

var digits = regexp.MustCompile(`[0-9]+|#[0-9a-f]+`)
