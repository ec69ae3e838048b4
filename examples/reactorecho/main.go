// Command reactorecho is a TCP echo server on evhub's reactor: handler
// callbacks on N loops (one per core by default), no goroutine per
// connection, a few hundred bytes per idle connection. Its first line of
// standard output is "listening on ADDR".
//
//	go run ./examples/reactorecho -backend gnet -addr 127.0.0.1:7008 -loops 2
//
// Every backend that builds without cgo is linked in (backends/all);
// -tags cev adds cev (libev).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	_ "github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/reactor"
)

// echo writes back whatever arrives: Next(-1) takes the input, Write
// buffers it, and the reactor sends it when OnData returns.
type echo struct{}

func (echo) OnOpen(*reactor.Conn) {}

func (echo) OnData(c *reactor.Conn) {
	b, _ := c.Next(-1)
	_, _ = c.Write(b)
}

func (echo) OnClose(*reactor.Conn, error) {}

func main() {
	backend := flag.String("backend", loop.Default(), "loop backend: one of "+strings.Join(loop.Names(), ", "))
	addr := flag.String("addr", "127.0.0.1:7008", "address to listen on")
	loops := flag.Int("loops", 0, "number of loops (0: GOMAXPROCS)")
	balance := flag.String("balance", "round-robin", "round-robin, least-connections or reuseport")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, os.Stdout, *backend, *addr, *loops, *balance); err != nil {
		log.Fatal(err)
	}
}

// serve runs the echo server until ctx ends, then shuts it down
// gracefully (5 s).
func serve(ctx context.Context, out io.Writer, backend, addr string, loops int, balance string) error {
	opt := reactor.Options{Backend: backend, Loops: loops}
	switch balance {
	case "round-robin":
		opt.Balance = reactor.RoundRobin
	case "least-connections":
		opt.Balance = reactor.LeastConnections
	case "reuseport":
		opt.Balance = reactor.ReusePort
	default:
		return fmt.Errorf("unknown -balance %q (round-robin, least-connections, reuseport)", balance)
	}
	srv, err := reactor.New(echo{}, opt)
	if err != nil {
		return err
	}
	a, err := srv.Listen("tcp", addr)
	if err != nil {
		_ = srv.Close()
		return err
	}
	fmt.Fprintf(out, "listening on %s\n", a)
	log.Printf("reactor echo: backend %s, %d loops, %s", srv.Backend(), srv.Loops(), balance)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
