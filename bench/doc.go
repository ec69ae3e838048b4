// Package bench measures evhub side by side with the libraries underneath it
// and with the standard library. Every figure it reports is a ratio within
// one run, never an absolute time held against another day: the machine
// it runs on may be shared and noisy, and a ratio of rows measured
// interleaved in one run survives that.
//
// A run starts each server in its own process pinned to one CPU with
// GOMAXPROCS=1 (the "serve" child role), and the load generator in another
// process pinned to the other CPU (the "load" child role); both are the same
// binary re-executed. Traffic stays on 127.0.0.1 and every phase is bounded
// in time. For every (workload, server) pair the orchestrator records round
// trips per second and latency percentiles (measured by the load generator
// with an HdrHistogram), the server's own CPU time per round trip (its
// getrusage, sampled through a control pipe at the start and the end of the
// measured window) and, for the idle workload, the server's RSS growth per
// idle connection, from a baseline read after a warm-up of 32 connections
// served and closed (so that what the first connection costs once is not
// counted per connection). Rows are interleaved and repeated; the median is quoted
// and compared with the stdlib row and with the raw library the row is built
// on.
//
// Before the servers, the orchestrator runs the loop micro-benchmarks
// in-process and unpinned, through testing.Benchmark, on every selected
// backend: a Post round trip, 100,000 timers scheduled and fired, readiness
// to a woken goroutine (the conformance package's benchmarks) and the
// allocations of a ready Read and Write on hub TCP sockets; the loop-level
// targets are judged on them.
//
// Servers are registered by name ([Register], [Servers]); the raw baselines
// (stdlib, gnet, gnet-mc, evio and, under the build tag cev, a libev server
// written in C) and the evhub rows are all plain entries of that registry.
// The command line (evhub bench, evhub compare) calls [Bench] and
// [Compare]; the child roles are [ServeMain] and [LoadMain].
package bench
