//go:build evio

package all

// -tags evio makes evio the default (it is linked either way).
var _ = tag("evio")
