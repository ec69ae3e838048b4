//go:build netpoll

package all

// -tags netpoll makes netpoll the default (it is linked either way).
func init() { tag("netpoll") }
