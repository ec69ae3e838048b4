// Package all links every evhub backend into a program and gives the
// registry evhub's one preference list, from which [loop.Default] picks
// the default backend. Import it for its side effect (each backend
// registers itself with [loop.Register] in its init); the root package
// evhub, the evhub command, the bench, and the conformance and scheduler
// tests do, so a backend is wired into every one of them here and nowhere
// else.
//
// The backends that need nothing but Go are linked unconditionally:
// netpoll, gnet and evio (each returns an error wrapping
// errors.ErrUnsupported from Open where its platform lacks what it needs).
// A backend that needs cgo, a C library or a recent kernel is linked only
// under its build tag, by a file of this package named after it
// (cev.go: //go:build cev).
//
// The default is the first backend of [Preference] that is compiled in
// and opens on this machine; a build tag that names a backend (-tags cev,
// -tags gnet, -tags evio, -tags netpoll) forces that backend instead. See
// docs/backends.md for the measurements behind the order and for adding a
// backend.
package all

import (
	"slices"

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

// tagged holds the backends named by build tags: each tag's file in this
// package initialises a variable with tag(name), which happens before
// init runs.
var tagged []string

// tag records that a build tag names backend name.
func tag(name string) bool {
	tagged = append(tagged, name)
	return true
}

func init() { loop.SetPreference(preference, tagged) }

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

// Default returns the default backend: [loop.Default] under this
// package's preference list.
func Default() string { return loop.Default() }
