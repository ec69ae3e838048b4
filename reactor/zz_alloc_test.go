package reactor_test

import (
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/evhub/evhub/reactor"
	"github.com/stretchr/testify/require"
)

func TestZZSetupAllocs(t *testing.T) {
	backend := os.Getenv("ZZB")
	runtime.MemProfileRate = 1
	s, addr := startEchoOpt(t, reactor.Options{Backend: backend})
	defer s.Close()
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	f, _ := os.Create("/tmp/a.out")
	pprof.Lookup("allocs").WriteTo(f, 0)
	f.Close()
	const n = 2000
	cs := make([]net.Conn, 0, n)
	buf := make([]byte, 64)
	for range n {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		pingPong(t, c, buf, 1)
		cs = append(cs, c)
	}
	time.Sleep(300 * time.Millisecond)
	runtime.GC()
	f, _ = os.Create("/tmp/b.out")
	pprof.Lookup("allocs").WriteTo(f, 0)
	f.Close()
	for _, c := range cs {
		c.Close()
	}
}
