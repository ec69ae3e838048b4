// Command taskecho is a TCP echo server written as cooperative tasks, the
// way a gevent server is written: one task accepts, one task per
// connection echoes, and every blocking call switches to the hub. All
// tasks share one goroutine's worth of scheduling; none runs in parallel
// with another, so the connection counter needs no lock.
//
//	go run ./examples/taskecho -backend gnet -addr 127.0.0.1:7008
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net"
	"strings"

	"github.com/evhub/evhub"
)

// Serve accepts on ln in a task and echoes each connection in its own
// task until ln is closed or ctx is cancelled.
func Serve(ctx context.Context, hub *evhub.Hub, ln net.Listener) (*evhub.Task, error) {
	return hub.GoContext(ctx, func(ctx context.Context) error {
		open := 0 // tasks of one hub never run in parallel: no lock
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			open++
			if _, err := hub.GoContext(ctx, func(ctx context.Context) error {
				defer func() { c.Close(); open-- }()
				_, err := io.Copy(c, c)
				return err
			}); err != nil {
				c.Close()
				return err
			}
		}
	})
}

func main() {
	backend := flag.String("backend", evhub.DefaultBackend(), "loop backend: one of "+strings.Join(evhub.Backends(), ", "))
	addr := flag.String("addr", "127.0.0.1:7008", "address to listen on")
	flag.Parse()
	hub, err := evhub.Open(*backend)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ln, err := hub.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("task echo on %s (backend %s)", ln.Addr(), hub.Backend())
	task, err := Serve(context.Background(), hub, ln)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(task.Wait(context.Background()))
}
