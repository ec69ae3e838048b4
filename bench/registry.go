package bench

import (
	"fmt"
	"net"
	"sort"
	"sync"
)

// Kind tells a baseline row from an evhub row.
type Kind int

const (
	// Baseline is a server written directly on a library (or on package
	// net): the figures evhub is judged against.
	Baseline Kind = iota
	// Evhub is a server written on evhub's hub sockets from goroutines.
	Evhub
	// EvhubTasks is a server written on evhub's cooperative tasks (hub.Go).
	EvhubTasks
	// EvhubReactor is a server written on evhub's callback-level reactor
	// (package reactor).
	EvhubReactor
)

// String returns "baseline", "evhub", "evhub-tasks" or "evhub-reactor".
func (k Kind) String() string {
	switch k {
	case Evhub:
		return "evhub"
	case EvhubTasks:
		return "evhub-tasks"
	case EvhubReactor:
		return "evhub-reactor"
	}
	return "baseline"
}

// IsEvhub reports whether k is a row built on evhub.
func (k Kind) IsEvhub() bool { return k == Evhub || k == EvhubTasks || k == EvhubReactor }

// Protocol is a set of wire protocols a server can serve.
type Protocol uint8

const (
	// Echo: every byte read is written back (ping-pong, pipelined and idle
	// workloads).
	Echo Protocol = 1 << iota
	// HTTP: net/http keep-alive GETs.
	HTTP
)

// Server is one row of the comparison: a way to serve the bench protocols.
// Start runs inside the server child process.
type Server struct {
	// Name is the row name, e.g. "stdlib", "gnet" or "evhub-gnet".
	Name string
	// Kind is Baseline or Evhub.
	Kind Kind
	// Backend is the event-loop family the row exercises, matched by the
	// -backend flag: "netpoll" (the Go runtime netpoller, which stdlib uses),
	// "gnet", "evio" or "cev" (libev).
	Backend string
	// Raw names the baseline row built directly on the same library, the
	// reference for the "×raw" ratio; empty for baselines. Left empty on
	// an evhub row, it is filled in by [Servers]: the first baseline row
	// (in display order, so stdlib first) whose Backend is the row's.
	Raw string
	// Protocols the server speaks.
	Protocols Protocol
	// Doc is a one-line description printed under the tables.
	Doc string
	// NotInCompare leaves the row out of evhub compare's short run (it is
	// in evhub bench).
	NotInCompare bool
	// Start begins serving proto on addr ("127.0.0.1:port", port 0 for any)
	// in the background and returns the bound address. It runs in the server
	// child, which exits to stop it, so it needs no shutdown path.
	Start func(proto Protocol, addr string) (net.Addr, error)
}

var (
	regMu   sync.RWMutex
	servers = map[string]*Server{}
)

// Register adds a server row. Like sql.Register it panics on an empty name,
// a missing Start or a duplicate, which are programming errors found at
// start-up.
func Register(s Server) {
	regMu.Lock()
	defer regMu.Unlock()
	if s.Name == "" || s.Start == nil || s.Backend == "" || s.Protocols == 0 {
		panic(fmt.Sprintf("bench: Register of an incomplete server %+v", s))
	}
	if _, dup := servers[s.Name]; dup {
		panic("bench: Register called twice for server " + s.Name)
	}
	servers[s.Name] = &s
}

// Lookup returns the server registered under name.
func Lookup(name string) (*Server, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	s, ok := servers[name]
	return s, ok
}

// Servers returns every registered server in display order: stdlib first,
// then the other baselines, then the evhub goroutine rows, then the evhub
// task rows, then the reactor rows, each group by name.
func Servers() []*Server {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]*Server, 0, len(servers))
	for _, s := range servers {
		out = append(out, s)
	}
	sortServers(out)
	for _, s := range out {
		if s.Kind.IsEvhub() && s.Raw == "" {
			s.Raw = rawFor(out, s.Backend)
		}
	}
	return out
}

// rawFor returns the first baseline of ss on backend, or "".
func rawFor(ss []*Server, backend string) string {
	for _, s := range ss {
		if s.Kind == Baseline && s.Backend == backend {
			return s.Name
		}
	}
	return ""
}

func sortServers(ss []*Server) {
	rank := func(s *Server) int {
		switch {
		case s.Name == StdlibRow:
			return 0
		case s.Kind == Baseline:
			return 1
		case s.Kind == Evhub:
			return 2
		case s.Kind == EvhubTasks:
			return 3
		}
		return 4
	}
	sort.SliceStable(ss, func(i, j int) bool {
		ri, rj := rank(ss[i]), rank(ss[j])
		if ri != rj {
			return ri < rj
		}
		return ss[i].Name < ss[j].Name
	})
}

// Backends returns the sorted backend families that have at least one row.
func Backends() []string {
	seen := map[string]bool{}
	for _, s := range Servers() {
		seen[s.Backend] = true
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// StdlibRow is the name of the package-net baseline every row is compared to.
const StdlibRow = "stdlib"
