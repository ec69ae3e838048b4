//go:build cev

package all

// libev through cgo needs libev-dev and cgo, so it is linked only when
// asked for; -tags cev also makes it the default.
import _ "github.com/evhub/evhub/backends/cev"

var _ = tag("cev")
