//go:build evio && !gnet && !cev

package evhub

const defaultBackend = "evio"
