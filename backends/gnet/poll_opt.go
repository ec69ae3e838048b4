//go:build poll_opt

package gnet

// gnet's poll_opt build tag changes Poller.Polling's signature and keeps Go
// pointers in epoll's data, hidden from the garbage collector. This backend
// is written for the default build and refuses to compile with the tag;
// the undefined name below is the message.
var _ = evhubGnetBackendCannotBeBuiltWithGnetsPollOptTag
