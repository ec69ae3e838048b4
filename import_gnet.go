//go:build gnet

package evhub

// -tags gnet links gnet's poller and makes it the default backend (unless
// cev is also asked for).
import _ "github.com/evhub/evhub/backends/gnet"
