package conformance_test

import _ "github.com/evhub/evhub/backends/evio"
