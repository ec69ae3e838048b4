package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/loop"
)

func start(t *testing.T, backend string) string {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, pw, backend, "127.0.0.1:0", 0); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	require.True(t, ok, "first line %q", line)
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return addr
}

func cmd(args ...string) string {
	s := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	return s
}

func TestRESP(t *testing.T) {
	for _, backend := range loop.Names() {
		t.Run(backend, func(t *testing.T) {
			addr := start(t, backend)
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			r := bufio.NewReader(c)

			// Pipelined commands, sent one byte at a time: each command is
			// answered only once whole, all in order.
			big := strings.Repeat("v", 100000)
			req := cmd("PING") + cmd("SET", "k", "hello\r\nworld") + cmd("GET", "k") + "PING\r\n" +
				cmd("GET", "nope") + cmd("SET", "big", big) + cmd("GET", "big") + cmd("DEL", "k", "nope") + cmd("FLY")
			want := "+PONG\r\n+OK\r\n$12\r\nhello\r\nworld\r\n+PONG\r\n$-1\r\n+OK\r\n$100000\r\n" + big + "\r\n:1\r\n-ERR unknown command 'FLY'\r\n"
			go func() {
				for i := 0; i < len(req); {
					n := 1
					if i > 200 {
						n = min(len(req)-i, 7000)
					}
					if _, err := c.Write([]byte(req[i : i+n])); err != nil {
						return
					}
					i += n
				}
			}()
			got := make([]byte, len(want))
			_, err = io.ReadFull(r, got)
			require.NoError(t, err)
			require.Equal(t, want, string(got))

			// Bad input: an error reply, then the connection is closed.
			_, err = c.Write([]byte("*2\r\n$x\r\n"))
			require.NoError(t, err)
			line, err := r.ReadString('\n')
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(line, "-ERR Protocol error"), line)
			_, err = r.ReadByte()
			require.ErrorIs(t, err, io.EOF)
		})
	}
}
