package loop

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Factory creates a new, not yet running loop.
type Factory func() (Loop, error)

var (
	regMu     sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a backend available by name. It is meant to be called
// from the backend package's init; like sql.Register it panics if name is
// empty, factory is nil, or name is registered twice, since each is a
// programming error found at start-up.
func Register(name string, factory Factory) {
	defer forgetDefault() // after regMu is released: Default takes prefMu, then regMu
	regMu.Lock()
	defer regMu.Unlock()
	if name == "" {
		panic("loop: Register with an empty name")
	}
	if factory == nil {
		panic("loop: Register of a nil factory for " + name)
	}
	if _, dup := factories[name]; dup {
		panic("loop: Register called twice for backend " + name)
	}
	factories[name] = factory
}

// Names returns the registered backend names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnknownBackendError is returned by Open for a name nobody registered.
type UnknownBackendError struct {
	Name  string
	Known []string
}

func (e *UnknownBackendError) Error() string {
	return fmt.Sprintf("loop: unknown backend %q (compiled in: %s)", e.Name, strings.Join(e.Known, ", "))
}

// Open creates a new loop of the named backend.
func Open(name string) (Loop, error) {
	regMu.RLock()
	f := factories[name]
	regMu.RUnlock()
	if f == nil {
		return nil, &UnknownBackendError{Name: name, Known: Names()}
	}
	l, err := f()
	if err != nil {
		return nil, fmt.Errorf("loop: open %s: %w", name, err)
	}
	return l, nil
}
