package scheduler_test

// The scheduler knows no backend; its tests and benchmarks run on every
// backend linked here, so that the wait primitive's cost can be compared
// side by side (cev needs -tags cev).
import _ "github.com/evhub/evhub/backends/gnet"
