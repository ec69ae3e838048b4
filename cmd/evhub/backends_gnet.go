package main

// The command line compares every backend, so it links them all; cev needs
// -tags cev (libev through cgo).
import _ "github.com/evhub/evhub/backends/gnet"
