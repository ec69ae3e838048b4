package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

func TestReactorEcho(t *testing.T) {
	for _, backend := range loop.Names() {
		t.Run(backend, func(t *testing.T) {
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- serve(ctx, pw, backend, "127.0.0.1:0", 0, "round-robin"); pw.Close() }()
			line, err := bufio.NewReader(pr).ReadString('\n')
			require.NoError(t, err)
			addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
			require.True(t, ok, "first line %q", line)
			go io.Copy(io.Discard, pr)
			for range 5 {
				c, err := net.Dial("tcp", addr)
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
			cancel()
			require.NoError(t, <-done)
		})
	}
}

func TestBadFlags(t *testing.T) {
	require.ErrorContains(t, serve(context.Background(), io.Discard, "nope", "127.0.0.1:0", 1, "round-robin"), "nope")
	require.ErrorContains(t, serve(context.Background(), io.Discard, "netpoll", "127.0.0.1:0", 1, "random"), "random")
}
