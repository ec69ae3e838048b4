//go:build gnet

package all

// -tags gnet makes gnet the default (it is linked either way).
var _ = tag("gnet")
