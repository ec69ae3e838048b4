package hubexec_test

// Every backend runs these tests (backends/all links them; the tagged
// ones with their build tag): netpoll, gnet and cev watch the child's
// pidfd, evio (no fd watching) waits through scheduler.Blocking.
import _ "github.com/evhub/evhub/backends/all"
