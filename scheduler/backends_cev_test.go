//go:build cev

package scheduler_test

import _ "github.com/evhub/evhub/backends/cev"
