package evhub_test

import (
	"fmt"
	"io"
	"log"

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
