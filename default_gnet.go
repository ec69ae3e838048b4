//go:build gnet && !cev

package evhub

const defaultBackend = "gnet"
