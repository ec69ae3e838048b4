//go:build linux

package gnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/pin"
	"github.com/evhub/evhub/scheduler"
)

// The bench saw the evhub-gnet row stall at one connection: a server with
// GOMAXPROCS=1 whose loop thread blocks in epoll_wait while the goroutine
// it must hand the P to cannot run. The test reproduces the bench's setup —
// the server in a child process with GOMAXPROCS=1 on one CPU, a goroutine
// per connection echoing on hub sockets, the client in this process on
// another CPU — and counts round trips slower than stallAt. A runtime stall
// costs 10–100 ms; a busy shared machine costs a few such round trips too,
// so the test fails only beyond stallsAllowed of them.

const (
	stallChildEnv = "EVHUB_GNET_STALL_CHILD"
	// stallNoYieldEnv makes the child's loop skip its Gosched after
	// callbacks (so that readied goroutines may strand in the runnext slot
	// while the loop blocks in epoll_wait: loop.Batch), to see whether the
	// test catches it. gnet's Polling yields on its own before it blocks
	// when a non-blocking wait found nothing, so a stall without the
	// loop's yield needs that wait to have found something: runs here
	// with it set saw 0 or 1 round trip over stallAt, in both modes.
	stallNoYieldEnv = "EVHUB_GNET_STALL_NOYIELD"
	// stallNestedEnv makes the child's loop use two pollers (mode nested).
	stallNestedEnv = "EVHUB_GNET_STALL_NESTED"
	stallRounds    = 2000
	stallAt        = 50 * time.Millisecond
	stallsAllowed  = 3
)

// stallChildMain is the server child of TestPingPongStalls: it echoes on a
// gnet hub until stdin closes. It returns the process's exit code.
func stallChildMain() int {
	l, err := open(os.Getenv(stallNestedEnv) != "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "stall child:", err)
		return 1
	}
	l.yield = os.Getenv(stallNoYieldEnv) == ""
	h, err := scheduler.New(l)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stall child:", err)
		return 1
	}
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "stall child:", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	fmt.Println("addr", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = h.Close()
	return 0
}

// TestPingPongStalls runs stallRounds 64-byte round trips on one
// connection to a GOMAXPROCS=1 gnet hub server, with one poller and with
// two, and fails if more than stallsAllowed of them take longer than
// stallAt.
func TestPingPongStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process (not run in -short)")
	}
	for _, nested := range []bool{false, true} {
		t.Run("nested="+strconv.FormatBool(nested), func(t *testing.T) { pingPongStalls(t, nested) })
	}
}

func pingPongStalls(t *testing.T, nested bool) {
	var cpus unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &cpus), "sched_getaffinity")
	serverCPU := -1
	if cpus.Count() >= 2 {
		for i := range 1024 {
			if cpus.IsSet(i) {
				serverCPU = i
				break
			}
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), stallChildEnv+"=1", "GOMAXPROCS=1")
	if nested {
		cmd.Env = append(cmd.Env, stallNestedEnv+"=1")
	}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, pin.Start(cmd, serverCPU), "start the server child")
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			assert.NoError(t, err, "server child exit")
		case <-time.After(bound):
			_ = cmd.Process.Kill()
			<-done
			t.Error("server child did not exit after stdin closed")
		}
	})
	lines := bufio.NewScanner(stdout)
	addr := ""
	for addr == "" && lines.Scan() {
		addr, _ = strings.CutPrefix(lines.Text(), "addr ")
	}
	require.NotEmpty(t, addr, "server child printed no address")
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	c, err := net.DialTimeout("tcp", addr, bound)
	require.NoError(t, err, "dial the server child")
	defer c.Close()
	msg, got := make([]byte, 64), make([]byte, 64)
	// Warm up: the first round trips register the fd and grow stacks.
	lat := make([]time.Duration, 0, stallRounds)
	for i := range stallRounds + 100 {
		start := time.Now()
		require.NoError(t, c.SetDeadline(start.Add(bound)))
		_, err := c.Write(msg)
		require.NoError(t, err, "write round trip %d", i)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err, "read round trip %d", i)
		if i >= 100 {
			lat = append(lat, time.Since(start))
		}
	}
	var stalls []time.Duration
	for _, d := range lat {
		if d > stallAt {
			stalls = append(stalls, d)
		}
	}
	slices.Sort(lat)
	t.Logf("%d round trips: p50 %v, p99 %v, max %v; %d over %v",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], len(stalls), stallAt)
	assert.LessOrEqual(t, len(stalls), stallsAllowed, "round trips over %v: %v", stallAt, stalls)
}
