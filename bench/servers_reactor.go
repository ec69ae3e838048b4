package bench

import (
	"fmt"
	"net"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/reactor"
)

// reactorEcho is the reactor's echo, the same code as
// examples/reactorecho: take the input, write it back when OnData returns.
type reactorEcho struct{}

func (reactorEcho) OnOpen(*reactor.Conn) {}

func (reactorEcho) OnData(c *reactor.Conn) {
	b, _ := c.Next(-1)
	_, _ = c.Write(b)
}

func (reactorEcho) OnClose(*reactor.Conn, error) {}

// One reactor row per compiled-in backend: handler callbacks on the
// backend's loop, one loop per P (the server child runs with GOMAXPROCS=1,
// so one loop, like the raw rows).
func init() {
	for _, backend := range evhub.Backends() {
		Register(Server{
			Name:      "reactor-" + backend,
			Kind:      EvhubReactor,
			Backend:   backend,
			Protocols: Echo,
			Doc:       fmt.Sprintf("evhub reactor on %s: handler callbacks, no goroutine per connection (examples/reactorecho)", backend),
			Start: func(_ Protocol, addr string) (net.Addr, error) {
				srv, err := reactor.New(reactorEcho{}, reactor.Options{Backend: backend})
				if err != nil {
					return nil, err
				}
				a, err := srv.Listen("tcp", addr)
				if err != nil {
					_ = srv.Close()
					return nil, err
				}
				return a, nil
			},
		})
	}
}
