//go:build cev

package bench

// The libev backend, linked only with -tags cev (it needs cgo and libev).
import _ "github.com/evhub/evhub/backends/cev"
