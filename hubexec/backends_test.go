package hubexec_test

// Every linked backend runs these tests (the tagged ones, such as cev,
// with their build tag): those that watch fds wait on the child's pidfd,
// evio (no fd watching) waits on the pidfd through the runtime's poller.
import _ "github.com/evhub/evhub/backends/all"
