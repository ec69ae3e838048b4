//go:build !linux || !uring

package uring_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/backends/uring"
	"github.com/evhub/evhub/loop"
)

// TestStub: without io_uring in the build (another OS, or no uring tag)
// the package still builds and registers, and opening it says why.
func TestStub(t *testing.T) {
	l, err := uring.New()
	require.Error(t, err)
	assert.Nil(t, l)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Contains(t, loop.Names(), uring.Name)
	_, err = loop.Open(uring.Name)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	t.Log(err)
}
