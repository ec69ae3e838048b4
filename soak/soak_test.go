package soak_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evhub/evhub"
	_ "github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/soak"
)

// TestSoak is the short soak of CI: 5 s per backend (EVHUB_SOAK_DURATION
// changes it), every byte verified, goroutines and descriptors back to
// their baseline afterwards.
func TestSoak(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv("EVHUB_SOAK_DURATION"); v != "" {
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(t, err, "EVHUB_SOAK_DURATION")
	}
	if testing.Short() {
		d = time.Second
	}
	for _, name := range loop.Names() {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			h, err := evhub.Open(name)
			require.NoError(t, err)
			defer func() { require.NoError(t, h.Close()) }()
			var out strings.Builder
			st, err := soak.Run(h, soak.Config{Duration: d, Interval: d / 2, Clients: 8, Out: &out, Seed: 1})
			t.Log("\n" + out.String())
			require.NoError(t, err)
			t.Logf("%+v", st)
			assert.Positive(t, st.Conns, "no connection served")
			assert.Positive(t, st.Bytes)
			assert.Positive(t, st.Ticks, "the ticker task never ran")
		})
	}
}
