// Command evhub lists the compiled-in backends, runs the conformance suite
// outside `go test` and prints a backend × area matrix, and compares the
// backends side by side (conformance and performance).
//
//	evhub backends               compiled-in backends, what each lacks, the default
//	evhub conformance [-backend NAME] [-v]
//	evhub compare                the conformance matrix and the bench table
//	evhub bench [flags]          the performance comparison alone
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/evhub/evhub"
	backends "github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
)

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

// register adds a subcommand; names starting with "__" are internal (the
// child processes evhub re-executes itself as) and not listed.
func register(name, summary string, run func(args []string) error) {
	if _, dup := commands[name]; dup {
		panic("evhub: command registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

// compareBench, when set (by the bench command's file), prints the
// performance half of `evhub compare`.
var compareBench func(w io.Writer, args []string) error

// errUsage makes main print the usage and exit 2.
var errUsage = errors.New("usage")

func init() {
	register("backends", "list the compiled-in backends and the capabilities each lacks", runBackends)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: evhub <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		if !strings.HasPrefix(n, "__") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'evhub <command> -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "-help" || name == "--help" || name == "help" {
		usage(os.Stdout)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "evhub: unknown command %q\n", name)
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "evhub %s: %v\n", name, err)
		os.Exit(1)
	}
}

func runBackends(args []string) error {
	fs := flag.NewFlagSet("backends", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	def := evhub.DefaultBackend()
	for _, name := range loop.Names() {
		mark := " "
		if name == def {
			mark = "*"
		}
		fmt.Print(mark)
		l, err := loop.Open(name)
		if err != nil {
			fmt.Printf("%-8s  cannot open: %v\n", name, err)
			continue
		}
		missing := loop.UnsupportedOf(l)
		_, edge := l.(loop.EdgeWatcher)
		_ = l.Close()
		extra := ""
		if edge {
			extra = " (+edge-triggered watches)"
		}
		if len(missing) == 0 {
			fmt.Printf("%-8s  full contract%s\n", name, extra)
			continue
		}
		fmt.Printf("%-8s  lacks:%s\n", name, extra)
		for _, c := range loop.SortedCapabilities(missing) {
			fmt.Printf("           %-7s %s\n", c, missing[c])
		}
	}
	fmt.Printf("\n* the default: %s", def)
	switch {
	case os.Getenv(evhub.EnvBackend) != "":
		fmt.Printf(" (from %s)\n", evhub.EnvBackend)
	case len(backends.Tagged()) > 0:
		fmt.Printf(" (named by a build tag)\n")
	default:
		fmt.Printf(" (the first that opens here of: %s)\n", strings.Join(backends.Preference(), ", "))
	}
	return nil
}
