package bench

import (
	"context"
	"fmt"
	"net"

	"github.com/evhub/evhub"
)

// Two rows per compiled-in backend (package evhub links them all through
// backends/all; the tagged ones with their build tag): goroutine-mode hub sockets (the stdlib
// row's very code, StartListener, on a listener from hub.Listen), and the
// same echo as cooperative tasks (hub.Go: one accepting task, one task per
// connection; net/http makes goroutines, so tasks serve echo only).
func init() {
	for _, backend := range evhub.Backends() {
		Register(Server{
			Name:      "evhub-" + backend,
			Kind:      Evhub,
			Backend:   backend,
			Protocols: Echo | HTTP,
			Doc:       fmt.Sprintf("evhub hub sockets on %s, a goroutine per connection (the stdlib row's code)", backend),
			Start: func(proto Protocol, addr string) (net.Addr, error) {
				_, ln, err := openHub(backend, addr)
				if err != nil {
					return nil, err
				}
				return StartListener(proto, ln)
			},
		})
		Register(Server{
			Name:      "evhub-" + backend + "-task",
			Kind:      EvhubTasks,
			Backend:   backend,
			Protocols: Echo,
			Doc:       fmt.Sprintf("evhub cooperative tasks on %s (hub.Go), a task per connection", backend),
			Start: func(_ Protocol, addr string) (net.Addr, error) {
				hub, ln, err := openHub(backend, addr)
				if err != nil {
					return nil, err
				}
				return startTaskEcho(hub, ln)
			},
		})
	}
}

func openHub(backend, addr string) (*evhub.Hub, net.Listener, error) {
	hub, err := evhub.Open(backend)
	if err != nil {
		return nil, nil, err
	}
	ln, err := hub.Listen("tcp", addr)
	if err != nil {
		_ = hub.Close()
		return nil, nil, err
	}
	return hub, ln, nil
}

// startTaskEcho serves echo on ln from tasks of hub, the way
// examples/taskecho does, with the goroutine rows' EchoConn as the
// per-connection body so the two modes differ only in who runs it.
func startTaskEcho(hub *evhub.Hub, ln net.Listener) (net.Addr, error) {
	accept, err := hub.Go(func(context.Context) error {
		for {
			c, err := ln.Accept()
			if err != nil {
				return fmt.Errorf("accept on %v: %w", ln.Addr(), err)
			}
			if _, err := hub.Go(func(context.Context) error {
				EchoConn(c)
				return nil
			}); err != nil {
				_ = c.Close()
				return fmt.Errorf("start a connection task: %w", err)
			}
		}
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("start the accept task: %w", err)
	}
	go func() {
		fatal(fmt.Errorf("accept task ended: %w", accept.Wait(context.Background())))
	}()
	return ln.Addr(), nil
}
