//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package gnet_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/backends/gnet"
	"github.com/evhub/evhub/loop"
)

// TestUnsupportedPlatform: the package builds and registers where gnet's
// poller does not exist, and opening it says why.
func TestUnsupportedPlatform(t *testing.T) {
	l, err := gnet.New()
	require.Error(t, err)
	assert.Nil(t, l)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Contains(t, loop.Names(), gnet.Name)
	_, err = loop.Open(gnet.Name)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
}
