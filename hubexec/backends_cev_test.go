//go:build cev

package hubexec_test

import _ "github.com/evhub/evhub/backends/cev"
