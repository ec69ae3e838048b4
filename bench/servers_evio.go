package bench

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"
)

func startEvio(addr string) (net.Addr, error) {
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	var ev evio.Events
	ev.NumLoops = 1
	ev.Serving = func(s evio.Server) evio.Action {
		ready <- s.Addrs[0]
		return evio.None
	}
	ev.Data = func(_ evio.Conn, in []byte) ([]byte, evio.Action) {
		return in, evio.None
	}
	go func() { errc <- evio.Serve(ev, "tcp://"+addr) }()
	select {
	case a := <-ready:
		// evio sets no TCP_NODELAY on accepted sockets and exposes no fd.
		// Linux copies TCP_NODELAY from a listening socket to the sockets it
		// accepts, so set it on evio's listener, found by its port.
		if err := setListenerNoDelay(a.(*net.TCPAddr).Port); err != nil {
			return nil, fmt.Errorf("evio: %w", err)
		}
		go func() {
			fatal(fmt.Errorf("evio server stopped: %v", <-errc))
		}()
		return a, nil
	case err := <-errc:
		return nil, fmt.Errorf("evio: %w", err)
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("evio: not serving within 10s")
	}
}

// setListenerNoDelay sets TCP_NODELAY on every listening TCP socket of this
// process bound to port.
func setListenerNoDelay(port int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("find listener: %w", err)
	}
	found := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		a, err := sockAddr(fd)
		if err != nil || a.(*net.TCPAddr).Port != port {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return fmt.Errorf("TCP_NODELAY on listener fd %d: %w", fd, err)
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("no listening socket on port %d found in /proc/self/fd", port)
	}
	return nil
}

func init() {
	Register(Server{
		Name:      "evio",
		Kind:      Baseline,
		Backend:   "evio",
		Protocols: Echo,
		Doc:       "evio v1.0.8 echo, one loop (TCP_NODELAY set through its listener)",
		Start: func(_ Protocol, addr string) (net.Addr, error) {
			return startEvio(addr)
		},
	})
}
