//go:build !gnet && !cev && !evio

package evhub

const defaultBackend = "netpoll"
