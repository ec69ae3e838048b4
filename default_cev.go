//go:build cev

package evhub

// -tags cev links libev through cgo and makes it the default backend.
import _ "github.com/evhub/evhub/backends/cev"

const defaultBackend = "cev"
