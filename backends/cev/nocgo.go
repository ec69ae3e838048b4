//go:build cev && !cgo

package cev

// The cev backend is libev through cgo: building it with CGO_ENABLED=0
// cannot work, so say so at compile time instead of silently linking a
// package that registers nothing.
var _ = cev_backend_needs_cgo__set_CGO_ENABLED_1_and_install_libev_dev
