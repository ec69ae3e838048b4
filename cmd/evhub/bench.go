package main

import (
	"os"

	"github.com/evhub/evhub/bench"
)

// The bench command, the performance half of compare, and the two child
// roles that bench re-executes this binary as: a server pinned to one CPU
// and a load generator pinned to the other.
func init() {
	register("bench", "the performance comparison: evhub backends against stdlib and the raw libraries (-h for flags)",
		func(args []string) error { return bench.Bench(os.Stdout, args) })
	register("__serve", "internal: a bench server process",
		func(args []string) error { return bench.ChildMain("serve", args) })
	register("__load", "internal: a bench load generator process",
		func(args []string) error { return bench.ChildMain("load", args) })
	compareBench = bench.Compare
}
