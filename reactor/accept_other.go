//go:build !linux

package reactor

import "github.com/evhub/evhub/internal/nbsock"

// acceptFD accepts a connection as a non-blocking, close-on-exec socket.
func acceptFD(s int) (int, error) {
	fd, _, err := nbsock.Accept(s)
	return fd, err
}
