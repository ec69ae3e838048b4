package bench

import (
	"fmt"
	"sort"
	"strings"
)

// Mode is how the load generator drives its connections.
type Mode int

const (
	// PingPong keeps Depth requests in flight per connection, sending the
	// next batch when the previous one is answered in full.
	PingPong Mode = iota
	// Idle opens the connections, echoes once on each so the server has
	// accepted it, and then leaves them idle while the server's RSS is read.
	Idle
)

// Workload is one column group of the comparison: what the load generator
// does to every server.
type Workload struct {
	Name  string
	Proto Protocol
	Mode  Mode
	Conns int
	// Size is the request size in bytes (echo) — responses are the same
	// size; for HTTP the body of the response is HTTPBodySize.
	Size int
	// Depth is the number of requests in flight per connection (pipelining).
	Depth int
	// Quick marks the workloads that evhub compare runs.
	Quick bool
	Doc   string
	order int
}

var workloads = []Workload{
	{Name: "pingpong-1", Proto: Echo, Conns: 1, Size: 64, Depth: 1, Quick: true,
		Doc: "64-byte ping-pong, 1 connection"},
	{Name: "pingpong-64", Proto: Echo, Conns: 64, Size: 64, Depth: 1, Quick: true,
		Doc: "64-byte ping-pong, 64 connections"},
	{Name: "pingpong-1000", Proto: Echo, Conns: 1000, Size: 64, Depth: 1, Quick: true,
		Doc: "64-byte ping-pong, 1,000 connections"},
	{Name: "msg16k-64", Proto: Echo, Conns: 64, Size: 16 << 10, Depth: 1,
		Doc: "16 KiB messages echoed, 64 connections"},
	{Name: "pipeline16-64", Proto: Echo, Conns: 64, Size: 64, Depth: 16,
		Doc: "64-byte requests pipelined 16 deep, 64 connections"},
	{Name: "http-64", Proto: HTTP, Conns: 64, Size: 0, Depth: 1,
		Doc: "net/http keep-alive GETs (64-byte body), 64 connections"},
	// The netpoll and evio backends hold two fds per connection (the
	// runtime netpoller needs its own dup), so on machines whose fd limit
	// is 20,000 (these) they cannot hold 10,000; the quick run uses 5,000
	// so that every row has a figure, and -full measures 10,000 and
	// reports the rows that hit EMFILE.
	{Name: "idle-5000", Proto: Echo, Mode: Idle, Conns: 5000, Size: 64, Depth: 1, Quick: true,
		Doc: "server RSS growth per idle connection, 5,000 connections"},
	{Name: "idle-10000", Proto: Echo, Mode: Idle, Conns: 10000, Size: 64, Depth: 1,
		Doc: "server RSS growth per idle connection, 10,000 connections"},
}

func init() {
	for i := range workloads {
		workloads[i].order = i
	}
}

// Workloads returns every workload in display order.
func Workloads() []Workload { return append([]Workload(nil), workloads...) }

// LookupWorkload returns the workload called name.
func LookupWorkload(name string) (Workload, bool) {
	for _, w := range workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// WorkloadNames lists every workload name in display order.
func WorkloadNames() []string {
	out := make([]string, len(workloads))
	for i, w := range workloads {
		out[i] = w.Name
	}
	return out
}

// parseWorkloads resolves a comma-separated list ("all" for every one,
// "quick" for the compare set) into workloads in display order.
func parseWorkloads(list string) ([]Workload, error) {
	seen := map[string]bool{}
	var out []Workload
	for _, name := range splitList(list) {
		switch name {
		case "all", "quick":
			for _, w := range workloads {
				if (name == "all" || w.Quick) && !seen[w.Name] {
					seen[w.Name] = true
					out = append(out, w)
				}
			}
			continue
		}
		w, ok := LookupWorkload(name)
		if !ok {
			return nil, fmt.Errorf("unknown workload %q (known: %s, all, quick)", name, strings.Join(WorkloadNames(), ", "))
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload selected")
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].order < out[j].order })
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// serversFor returns the servers a workload runs on among rows.
func serversFor(w Workload, rows []*Server) []*Server {
	var out []*Server
	for _, s := range rows {
		if s.Protocols&w.Proto != 0 {
			out = append(out, s)
		}
	}
	return out
}
