package hubexec_test

// Every linked backend runs these tests (the tagged ones, such as cev,
// with their build tag): those that watch fds wait on the child's pidfd,
// evio (no fd watching) waits through scheduler.Blocking.
import _ "github.com/evhub/evhub/backends/all"
