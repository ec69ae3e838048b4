// Package all links every evhub backend into a program and chooses the
// default one. Import it for its side effect (each backend registers
// itself with [loop.Register] in its init); the root package evhub, the
// evhub command, the bench, and the conformance and scheduler tests all
// do, so a backend is wired into every one of them here and nowhere else.
//
// The backends that need nothing but Go are linked unconditionally:
// netpoll, gnet and evio (each returns an error wrapping
// errors.ErrUnsupported from Open where its platform lacks what it needs).
// A backend that needs cgo, a C library or a recent kernel is linked only
// under its build tag, by a file of this package named after it
// (cev.go: //go:build cev).
//
// [Default] picks the default backend from one ordered list, [Preference]:
// the first backend in it that is compiled in and opens on this machine.
// A build tag that names a backend (-tags cev, -tags gnet, -tags evio)
// forces that backend instead. See docs/backends.md for the measurements
// behind the order and for adding a backend.
package all

import (
	"errors"
	"slices"
	"sync"

	"github.com/evhub/evhub/loop"

	// Pure-Go backends, linked everywhere.
	_ "github.com/evhub/evhub/backends/evio"
	_ "github.com/evhub/evhub/backends/gnet"
	_ "github.com/evhub/evhub/backends/netpoll"
)

// preference orders the backends for the default, best first. A backend
// linked only under a build tag goes first: asking for it by tag is
// asking for it as the default.
var preference = []string{
	"uring",   // io_uring: only with -tags uring (Linux)
	"cev",     // libev through cgo: only with -tags cev
	"gnet",    // gnet's epoll/kqueue poller: Linux, macOS, the BSDs; the fastest pure-Go row of the bench
	"netpoll", // the Go runtime's netpoller: every Unix the runtime polls on
	"evio",    // listen-only and unmaintained: never the default unless asked for
}

// tagged holds the backends named by build tags (see the tag_*.go and
// per-backend files of this package), in no particular order.
var tagged []string

// tag records that a build tag names backend name: the default is then
// chosen among the tagged backends only.
func tag(name string) { tagged = append(tagged, name) }

// Preference returns the backends in the order the default is chosen,
// best first. It lists every backend evhub knows, compiled in or not.
func Preference() []string { return slices.Clone(preference) }

// Tagged returns the backends that build tags named, in preference order
// (empty without such a tag).
func Tagged() []string {
	var out []string
	for _, name := range preference {
		if slices.Contains(tagged, name) {
			out = append(out, name)
		}
	}
	return out
}

var (
	defaultOnce sync.Once
	defaultName string
)

// Default returns the name of the default backend. With a build tag that
// names a backend, it is the first tagged backend in preference order,
// whether or not it can open here (so that Open reports why not). Without
// one, it is the first backend in preference order that is registered and
// whose loop opens here: a backend whose Open fails with an error wrapping
// errors.ErrUnsupported (gnet on a platform without epoll or kqueue, say)
// is passed over; any other error stops the search at that backend, so
// that opening it reports the error instead of hiding it behind a
// fallback. The result is computed once per process.
func Default() string {
	defaultOnce.Do(func() { defaultName = choose(preference, Tagged(), loop.Names(), probe) })
	return defaultName
}

// probe opens and closes a loop of the named backend and reports whether
// the platform rules it out.
func probe(name string) (unsupported bool) {
	l, err := loop.Open(name)
	if err != nil {
		return errors.Is(err, errors.ErrUnsupported)
	}
	_ = l.Close()
	return false
}

// choose is Default's rule, apart from the registry, for tests.
func choose(preference, tagged, registered []string, unsupported func(string) bool) string {
	for _, name := range tagged {
		if slices.Contains(registered, name) {
			return name
		}
	}
	first := ""
	for _, name := range preference {
		if !slices.Contains(registered, name) {
			continue
		}
		if first == "" {
			first = name
		}
		if !unsupported(name) {
			return name
		}
	}
	// Nothing opens here: the best registered backend, whose Open says
	// why.
	if first == "" && len(registered) > 0 {
		first = registered[0]
	}
	return first
}
