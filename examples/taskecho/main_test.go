package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub"
)

func TestTaskEcho(t *testing.T) {
	for _, backend := range evhub.Backends() {
		t.Run(backend, func(t *testing.T) {
			hub, err := evhub.Open(backend)
			require.NoError(t, err)
			defer func() { require.NoError(t, hub.Close()) }()
			ln, err := hub.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			task, err := Serve(context.Background(), hub, ln)
			require.NoError(t, err)
			for i := 0; i < 5; i++ {
				c, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(t, err)
				require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
				_, err = c.Write([]byte("ping"))
				require.NoError(t, err)
				buf := make([]byte, 4)
				_, err = io.ReadFull(c, buf)
				require.NoError(t, err)
				require.Equal(t, "ping", string(buf))
				require.NoError(t, c.Close())
			}
			require.NoError(t, ln.Close())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.ErrorIs(t, task.Wait(ctx), net.ErrClosed)
		})
	}
}
