package reactor_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/reactor"
)

// sockOpts reads a connection's keep-alive settings in OnOpen.
type sockOpts struct{ got chan [4]int }

func (h sockOpts) OnOpen(c *reactor.Conn) {
	var v [4]int
	v[0], _ = unix.GetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
	v[1], _ = unix.GetsockoptInt(c.Fd(), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	v[2], _ = unix.GetsockoptInt(c.Fd(), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
	v[3], _ = unix.GetsockoptInt(c.Fd(), unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	h.got <- v
}
func (sockOpts) OnData(c *reactor.Conn)       { _, _ = c.Discard(-1) }
func (sockOpts) OnClose(*reactor.Conn, error) {}

// TestKeepAlive: accepted and dialled connections get keep-alive as
// net.ListenConfig and net.Dialer give it, default and configured.
func TestKeepAlive(t *testing.T) {
	defer goleak.VerifyNone(t)
	// The kernel's own defaults, to tell "left alone" from "set".
	probe, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	kIdle, _ := unix.GetsockoptInt(probe, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	kIntvl, _ := unix.GetsockoptInt(probe, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
	kCnt, _ := unix.GetsockoptInt(probe, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	unix.Close(probe)

	cases := []struct {
		name string
		ka   time.Duration
		cfg  net.KeepAliveConfig
		want [4]int
	}{
		{"default", 0, net.KeepAliveConfig{}, [4]int{1, 15, 15, 9}},
		{"KeepAlive", 30 * time.Second, net.KeepAliveConfig{}, [4]int{1, 30, 15, 9}},
		{"KeepAlive rounded up", 1500 * time.Millisecond, net.KeepAliveConfig{}, [4]int{1, 2, 15, 9}},
		{"off", -1, net.KeepAliveConfig{}, [4]int{0, kIdle, kIntvl, kCnt}},
		{"config", -1, net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 3 * time.Second, Count: 4}, [4]int{1, 5, 3, 4}},
		{"config negative fields", 0, net.KeepAliveConfig{Enable: true, Idle: -1, Interval: 7 * time.Second, Count: -1}, [4]int{1, kIdle, 7, kCnt}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := sockOpts{got: make(chan [4]int, 2)}
			s, err := reactor.New(h, reactor.Options{Backend: "gnet", Loops: 1, KeepAlive: tc.ka, KeepAliveConfig: tc.cfg})
			require.NoError(t, err)
			defer s.Close()
			a, err := s.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)

			c, err := net.Dial("tcp", a.String())
			require.NoError(t, err)
			defer c.Close()
			select {
			case v := <-h.got:
				require.Equal(t, tc.want, v, "accepted: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT")
			case <-time.After(5 * time.Second):
				t.Fatal("no OnOpen for the accepted connection")
			}

			dc, err := s.Dial("tcp", a.String(), 5*time.Second)
			require.NoError(t, err)
			defer func() { _ = dc.Post(func(c *reactor.Conn) { _ = c.Close() }) }()
			for range 2 { // the dialled side and its accepted peer
				select {
				case v := <-h.got:
					require.Equal(t, tc.want, v, "dialled: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT")
				case <-time.After(5 * time.Second):
					t.Fatal("no OnOpen for the dialled connection")
				}
			}
		})
	}
}
