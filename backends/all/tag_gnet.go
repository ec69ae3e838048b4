//go:build gnet

package all

// -tags gnet makes gnet the default (it is linked either way).
func init() { tag("gnet") }
