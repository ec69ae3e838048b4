//go:build evio

package evhub

// -tags evio links the evio backend and makes it the default.
import _ "github.com/evhub/evhub/backends/evio"
