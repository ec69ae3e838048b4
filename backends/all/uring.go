//go:build uring

package all

// io_uring needs Linux 5.13 or later, so it is linked only when asked for;
// -tags uring also makes it the default.
import _ "github.com/evhub/evhub/backends/uring"

var _ = tag("uring")
