package loop

import (
	"errors"
	"slices"
	"sync"
)

var (
	prefMu     sync.Mutex
	prefOrder  []string
	prefTagged []string
	defDone    bool
	defName    string
)

// SetPreference sets how [Default] chooses among the registered backends:
// order lists backends best first, and tagged names the ones a build tag
// asked for (nil if none). Package backends/all calls it from its init
// with evhub's one preference list; a program that registers backends of
// its own may call it again, before or after Default.
func SetPreference(order, tagged []string) {
	prefMu.Lock()
	defer prefMu.Unlock()
	prefOrder, prefTagged = slices.Clone(order), slices.Clone(tagged)
	defDone = false
}

// Preference returns the order and the tagged backends of the last
// SetPreference.
func Preference() (order, tagged []string) {
	prefMu.Lock()
	defer prefMu.Unlock()
	return slices.Clone(prefOrder), slices.Clone(prefTagged)
}

// Default returns the name of the default backend, or "" if none is
// registered. With tagged backends, it is the first of them in preference
// order that is registered, whether or not it can open here (so that Open
// reports why not). Otherwise it is the first registered backend in
// preference order (then the others, by name) whose loop opens here: a
// backend whose Open fails with an error wrapping errors.ErrUnsupported is
// passed over; any other error stops the search at that backend, so that
// opening it reports the error instead of hiding it behind a fallback. If
// none opens, it is the first candidate. The choice opens and closes at
// most a few loops, once, until the next SetPreference or Register.
func Default() string {
	prefMu.Lock()
	defer prefMu.Unlock()
	if !defDone {
		defName = chooseDefault(prefOrder, prefTagged, Names(), probeUnsupported)
		defDone = true
	}
	return defName
}

// probeUnsupported opens and closes a loop of the named backend and
// reports whether this machine rules it out.
func probeUnsupported(name string) bool {
	l, err := Open(name)
	if err != nil {
		return errors.Is(err, errors.ErrUnsupported)
	}
	_ = l.Close()
	return false
}

// chooseDefault is Default's rule, apart from the registry.
func chooseDefault(order, tagged, registered []string, unsupported func(string) bool) string {
	for _, name := range order {
		if slices.Contains(tagged, name) && slices.Contains(registered, name) {
			return name
		}
	}
	var candidates []string
	for _, name := range order {
		if slices.Contains(registered, name) {
			candidates = append(candidates, name)
		}
	}
	for _, name := range registered {
		if !slices.Contains(candidates, name) {
			candidates = append(candidates, name)
		}
	}
	for _, name := range candidates {
		if !unsupported(name) {
			return name
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return ""
}

// forgetDefault makes the next Default choose again.
func forgetDefault() {
	prefMu.Lock()
	defDone = false
	prefMu.Unlock()
}
