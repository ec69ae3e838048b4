//go:build netpoll

package all

// -tags netpoll makes netpoll the default (it is linked either way).
var _ = tag("netpoll")
