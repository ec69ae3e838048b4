package bench

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

// gnetEcho is gnet's own echo example: whatever arrives is written back
// from the loop callback.
type gnetEcho struct {
	gnet.BuiltinEventEngine
	boot chan gnet.Engine
}

func (g *gnetEcho) OnBoot(e gnet.Engine) gnet.Action {
	g.boot <- e
	return gnet.None
}

func (g *gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	_, _ = c.Write(buf)
	return gnet.None
}

// gnetLogger drops gnet's debug and info lines (it logs "Launching gnet"
// on stdout) and keeps the rest on stderr, where a failed run's report
// picks them up.
type gnetLogger struct{}

func (gnetLogger) Debugf(string, ...any) {}
func (gnetLogger) Infof(string, ...any)  {}
func (gnetLogger) Warnf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet warning: "+f+"\n", a...)
}
func (gnetLogger) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet error: "+f+"\n", a...)
}
func (gnetLogger) Fatalf(f string, a ...any) {
	fatal(fmt.Errorf("gnet fatal: "+f, a...))
}

var _ logging.Logger = gnetLogger{}

func startGnet(addr string, multicore bool) (net.Addr, error) {
	h := &gnetEcho{boot: make(chan gnet.Engine, 1)}
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Run(h, "tcp://"+addr,
			gnet.WithMulticore(multicore),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			// Like net.Listen: a fixed -port must bind again while the
			// previous server's connections sit in TIME_WAIT.
			gnet.WithReuseAddr(true),
			gnet.WithLogger(gnetLogger{}))
	}()
	var eng gnet.Engine
	select {
	case eng = <-h.boot:
	case err := <-errc:
		return nil, fmt.Errorf("gnet: %w", err)
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("gnet: engine did not boot within 10s")
	}
	go func() {
		if err := <-errc; err != nil {
			fatal(fmt.Errorf("gnet engine stopped: %w", err))
		}
		fatal(fmt.Errorf("gnet engine stopped"))
	}()
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("gnet: dup listener: %w", err)
	}
	defer unix.Close(fd)
	return sockAddr(fd)
}

func init() {
	Register(Server{
		Name:      "gnet",
		Kind:      Baseline,
		Backend:   "gnet",
		Protocols: Echo,
		Doc:       "gnet v2 engine echo, one event loop",
		Start: func(_ Protocol, addr string) (net.Addr, error) {
			return startGnet(addr, false)
		},
	})
	Register(Server{
		Name:      "gnet-mc",
		Kind:      Baseline,
		Backend:   "gnet",
		Protocols: Echo,
		Doc:       "gnet v2 engine echo, WithMulticore (an accept reactor + NumCPU loops; NumCPU is 1 when pinned)",
		// Pinned to one CPU it adds little to the gnet row: bench only.
		NotInCompare: true,
		Start: func(_ Protocol, addr string) (net.Addr, error) {
			return startGnet(addr, true)
		},
	})
}
