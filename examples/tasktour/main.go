// Command tasktour is a task-mode program that does what real programs
// do, on one hub, without ever freezing it: while tasks serve TCP echo
// connections, other tasks look names up, fetch a page over net/http
// (from a server of its own on 127.0.0.1) and run a subprocess reading
// its output line by line. A ticker task measures the longest gap
// between its 5 ms ticks: if any task had blocked the hub, the gap would
// show it. It runs for a moment and exits.
//
//	go run ./examples/tasktour
//	go run -tags gnet ./examples/tasktour -clients 20 -rounds 500
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/evhub/evhub"
	"github.com/evhub/evhub/loop"
)

// Report is what the tour saw.
type Report struct {
	Backend     string
	Lookups     []string      // "name -> addresses"
	HTTPBody    string        // what the fetch returned
	ChildLines  []string      // the child's stdout, line by line
	EchoBytes   int           // bytes echoed by the echo tasks
	Ticks       int           // ticks of the ticker task
	LongestTick time.Duration // the longest gap between two ticks
}

// Tour runs every task on hub and returns what they saw. clients
// standard-library clients each make rounds echo round trips.
func Tour(ctx context.Context, hub *evhub.Hub, clients, rounds int) (*Report, error) {
	rep := &Report{Backend: hub.Backend()}
	g := hub.NewGroup(ctx, 0)

	// Tasks serving connections: one accepts, one per connection echoes.
	ln, err := hub.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	if _, err := hub.GoContext(ctx, func(ctx context.Context) error {
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			if _, err := hub.GoContext(ctx, func(ctx context.Context) error {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return nil
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return nil
					}
					rep.EchoBytes += n // tasks never run in parallel: no lock
				}
			}); err != nil {
				c.Close()
				return err
			}
		}
	}); err != nil {
		return nil, err
	}

	// A local web server for the fetch (goroutines on a hub listener).
	webLn, err := hub.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	})}
	go func() { _ = web.Serve(webLn) }()
	defer web.Close()

	done := make(chan struct{})
	var doneOnce sync.Once
	finish := func() { doneOnce.Do(func() { close(done) }) }

	// The ticker: its longest gap shows whether anything froze the hub.
	if err := g.Go(func(ctx context.Context) error {
		last := time.Now()
		for {
			select {
			case <-done:
				return nil
			default:
			}
			if err := hub.Sleep(5 * time.Millisecond); err != nil {
				return err
			}
			now := time.Now()
			rep.LongestTick = max(rep.LongestTick, now.Sub(last))
			last = now
			rep.Ticks++
		}
	}); err != nil {
		return nil, err
	}

	work := hub.NewGroup(ctx, 0)
	// Lookups park the task, not the hub.
	_ = work.Go(func(ctx context.Context) error {
		for _, name := range []string{"localhost", "127.0.0.1"} {
			addrs, err := hub.Resolver().LookupHost(ctx, name)
			if err != nil {
				return fmt.Errorf("lookup %s: %w", name, err)
			}
			rep.Lookups = append(rep.Lookups, fmt.Sprintf("%s -> %v", name, addrs))
		}
		port, err := hub.Resolver().LookupPort(ctx, "tcp", "http")
		if err != nil {
			return err
		}
		rep.Lookups = append(rep.Lookups, fmt.Sprintf("tcp/http -> %d", port))
		return nil
	})
	// net/http's client waits on channels and mutexes: it runs through
	// Blocking, which parks only this task. It dials through the hub where
	// the backend can dial.
	_ = work.Go(func(ctx context.Context) error {
		tr := &http.Transport{}
		if loop.Supports(hub.Loop(), loop.CapDial) {
			tr.DialContext = hub.DialContext
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		body, err := evhub.BlockingValue(ctx, func() (string, error) {
			resp, err := client.Get("http://" + webLn.Addr().String() + "/")
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return string(b), err
		})
		rep.HTTPBody = body
		return err
	})
	// A subprocess, read line by line where the hub can watch its pipe.
	_ = work.Go(func(ctx context.Context) error {
		cmd := evhub.CommandContext(ctx, hub, "sh", "-c", "for i in 1 2 3; do echo child line $i; sleep 0.05; done")
		out, err := cmd.StdoutPipe()
		if errors.Is(err, errors.ErrUnsupported) {
			// A backend that cannot watch fds (evio) still runs children.
			b, err := evhub.CommandContext(ctx, hub, "sh", "-c", "echo child line 1; echo child line 2; echo child line 3").Output()
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				rep.ChildLines = append(rep.ChildLines, sc.Text())
			}
			return err
		}
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			rep.ChildLines = append(rep.ChildLines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return cmd.Wait()
	})
	// Standard-library clients of the echo tasks.
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoClient(ln.Addr().String(), rounds)
		}()
	}
	werr := work.Wait(ctx)
	wg.Wait()
	close(errs)
	finish()
	gerr := g.Wait(ctx)
	for err := range errs {
		if err != nil {
			return rep, err
		}
	}
	return rep, errors.Join(werr, gerr)
}

func echoClient(addr string, rounds int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := []byte("ping")
	buf := make([]byte, len(msg))
	for i := 0; i < rounds; i++ {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	backend := flag.String("backend", evhub.DefaultBackend(), "loop backend ("+fmt.Sprint(evhub.Backends())+")")
	clients := flag.Int("clients", 10, "echo clients")
	rounds := flag.Int("rounds", 200, "round trips per echo client")
	flag.Parse()
	hub, err := evhub.Open(*backend)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Tour(ctx, hub, *clients, *rounds)
	if err != nil {
		hub.Close()
		log.Fatal(err)
	}
	fmt.Printf("backend %s\n", rep.Backend)
	for _, l := range rep.Lookups {
		fmt.Printf("lookup   %s\n", l)
	}
	fmt.Printf("http     %q\n", rep.HTTPBody)
	for _, l := range rep.ChildLines {
		fmt.Printf("child    %s\n", l)
	}
	fmt.Printf("echo     %d bytes echoed by tasks\n", rep.EchoBytes)
	fmt.Printf("ticker   %d ticks of 5ms, longest gap %v\n", rep.Ticks, rep.LongestTick.Round(time.Millisecond))
	if err := hub.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
