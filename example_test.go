package evhub_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/evhub/evhub"
)

// Open a hub on a named backend, serve one echo connection and talk to it.
func ExampleOpen() {
	hub, err := evhub.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	ln, err := hub.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // blocking Go code; the hub's loop does the waiting
	}()

	c, err := hub.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hello, hub")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf))
	// Output: hello, hub
}

// An unknown backend name is an error that lists the compiled-in ones.
func ExampleOpen_unknown() {
	_, err := evhub.Open("nope")
	fmt.Println(err != nil)
	// Output: true
}

// The package-level functions use the default hub: netpoll unless a build
// tag or EVHUB_BACKEND says otherwise.
func ExampleListen() {
	ln, err := evhub.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	fmt.Printf("%T\n", ln.Addr())
	// Output: *net.TCPAddr
}

// Cooperative tasks, gevent style: blocking code that switches to the hub
// instead of parking a goroutine. Tasks of one hub never run in parallel,
// so they share state without locks.
func ExampleHub_Go() {
	hub, err := evhub.Open("netpoll")
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	var ready evhub.Event
	total := 0 // shared by the tasks, no lock needed
	g := hub.NewGroup(context.Background(), 0)
	for i := 1; i <= 3; i++ {
		_ = g.Go(func(ctx context.Context) error {
			if err := ready.Wait(ctx); err != nil {
				return err
			}
			total += i
			return hub.Sleep(time.Millisecond)
		})
	}
	ready.Set()
	if err := g.Wait(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(total)
	// Output: 6
}
