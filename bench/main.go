package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Bench is `evhub bench`: it parses args, runs the selected workloads
// against the selected servers, and writes the tables (or JSON with -json)
// to w, progress to stderr, and with -out the benchstat text, the JSON, the
// tables and one chart per workload. It returns an error, for a non-zero
// exit, on a bad flag and when any run failed.
func Bench(w io.Writer, args []string) error { return run(w, "bench", args) }

// Compare is the bench part of `evhub compare`: the quick workloads, one
// repetition each, about a minute and a half on a two-core machine. It
// takes the same flags as Bench; without -out it writes the data and the
// charts to a new folder under the system's temporary directory, named on
// its last line of output.
func Compare(w io.Writer, args []string) error { return run(w, "compare", args) }

func run(w io.Writer, name string, args []string) error { return runWith(w, name, args, nil) }

// runWith is run with the children started by spawn (nil: SelfSpawner).
func runWith(w io.Writer, name string, args []string, spawn Spawner) error {
	cfg, err := ParseFlags(name, args)
	var help errHelp
	if errors.As(err, &help) {
		_, werr := io.WriteString(w, help.text)
		return werr
	}
	if err != nil {
		return err
	}
	cfg.Progress = os.Stderr
	cfg.Spawn = spawn
	if name == "compare" && cfg.Out == "" && !cfg.JSON {
		if cfg.Out, err = os.MkdirTemp("", "evhub-compare-"); err != nil {
			return fmt.Errorf("a folder for the charts: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return RunAndReport(ctx, w, cfg, name == "compare")
}

// RunAndReport runs cfg and writes its report to w (and to cfg.Out): the
// per-workload tables, or with short the one-table summary.
func RunAndReport(ctx context.Context, w io.Writer, cfg *Config, short bool) error {
	rep, err := Run(ctx, cfg)
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	if err != nil {
		return err
	}
	switch {
	case cfg.JSON:
		err = rep.WriteJSON(w)
	case short:
		err = rep.WriteSummary(w, cfg)
	default:
		err = rep.WriteText(w, cfg)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if cfg.Out != "" {
		if err := rep.WriteOut(cfg.Out, cfg); err != nil {
			return err
		}
		if !cfg.JSON {
			fmt.Fprintf(w, "Wrote results.txt (benchstat), results.json, report.txt and the charts (summary.png, one per workload) to %s\n", cfg.Out)
		}
	}
	if fails := rep.Failures(); len(fails) > 0 {
		return fmt.Errorf("%d of %d runs failed (listed in the report)", len(fails), len(rep.Samples))
	}
	if fails := rep.MicroFailures(); len(fails) > 0 {
		return fmt.Errorf("%d of %d micro-benchmarks failed (listed in the report)", len(fails), len(rep.Micro))
	}
	return nil
}
