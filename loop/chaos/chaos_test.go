package chaos_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/loop/chaos"
)

// The wrapper keeps exactly the inner loop's optional capabilities.
func TestCapabilitiesKept(t *testing.T) {
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			inner, err := loop.Open(name)
			require.NoError(t, err)
			_, edge := inner.(loop.EdgeWatcher)
			_, ss := inner.(loop.StreamServer)
			_, comp := inner.(loop.Completer)
			missing := loop.UnsupportedOf(inner)
			l := chaos.Wrap(inner, 1)
			defer func() { require.NoError(t, l.Close()) }()
			_, cedge := l.(loop.EdgeWatcher)
			_, css := l.(loop.StreamServer)
			_, ccomp := l.(loop.Completer)
			assert.Equal(t, edge, cedge, "EdgeWatcher")
			assert.Equal(t, ss, css, "StreamServer")
			assert.Equal(t, comp, ccomp, "Completer")
			assert.Equal(t, missing, loop.UnsupportedOf(l), "Unsupported")
			assert.Equal(t, name, l.Name())
		})
	}
}
