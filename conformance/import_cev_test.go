//go:build cev

package conformance_test

// The libev backend, compiled in only with -tags cev (it needs cgo and
// libev-dev), so that the suite runs on it too.
import _ "github.com/evhub/evhub/backends/cev"
