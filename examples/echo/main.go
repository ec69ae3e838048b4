// Command echo is a TCP echo server on an evhub hub: one goroutine per
// connection, written exactly as for package net, with the waiting done by
// the backend chosen on the command line.
//
//	go run ./examples/echo -backend gnet -addr 127.0.0.1:7007
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/evhub/evhub"
)

func main() {
	backend := flag.String("backend", evhub.DefaultBackend(), "loop backend: one of "+strings.Join(evhub.Backends(), ", "))
	addr := flag.String("addr", "127.0.0.1:7007", "address to listen on")
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
	log.Printf("echo on %s (backend %s)", ln.Addr(), hub.Backend())

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Print(err)
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
