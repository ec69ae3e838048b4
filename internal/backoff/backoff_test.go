package backoff_test

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/evhub/evhub/internal/backoff"
)

func TestNextDoublesUpToMax(t *testing.T) {
	var b backoff.Accept
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		assert.Equal(t, w*time.Millisecond, b.Next(), "delay %d", i)
	}
	b.Reset()
	assert.Equal(t, backoff.Min, b.Next(), "first delay after Reset")
	assert.Equal(t, 2*backoff.Min, b.Next(), "second delay after Reset")
}

func TestExhausted(t *testing.T) {
	wrapped := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
	}
	for _, err := range []error{syscall.EMFILE, syscall.ENFILE, wrapped(syscall.EMFILE), wrapped(syscall.ENFILE)} {
		assert.True(t, backoff.Exhausted(err), "%v", err)
	}
	for _, err := range []error{nil, syscall.EAGAIN, syscall.ECONNABORTED, syscall.ENOBUFS, wrapped(syscall.EINVAL)} {
		assert.False(t, backoff.Exhausted(err), "%v", err)
	}
}
