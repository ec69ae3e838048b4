// Command reactorresp is a small Redis-compatible server (PING, ECHO,
// SET, GET, DEL) on evhub's reactor, to show a real protocol at the
// callback level: commands that arrive in pieces wait in the connection's
// input until they are whole, several pipelined commands in one read are
// answered in one write, and bad input is answered with an error and a
// close. Its first line of standard output is "listening on ADDR"; try it
// with redis-cli -p PORT or redis-benchmark -t ping,set,get -P 16.
//
//	go run ./examples/reactorresp -backend gnet -addr 127.0.0.1:6380
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/evhub/evhub/backends/all"
	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/reactor"
)

// store is the key space, shared by every loop.
type store struct {
	mu sync.RWMutex
	m  map[string][]byte
}

// server is the Handler.
type server struct{ db *store }

func (s *server) OnOpen(*reactor.Conn) {}

func (s *server) OnClose(*reactor.Conn, error) {}

// OnData answers every whole command buffered. What it does not take (a
// command cut short) is presented again, with what follows, next time.
func (s *server) OnData(c *reactor.Conn) {
	var scratch [8][]byte
	for c.InboundBuffered() > 0 {
		in, _ := c.Peek(-1)
		args, n, err := parseCommand(in, scratch[:0])
		if errors.Is(err, errIncomplete) {
			return
		}
		if err != nil {
			fmt.Fprintf(c, "-ERR %s\r\n", err)
			_ = c.Close()
			return
		}
		s.do(c, args) // args point into the input: use them before taking it
		_, _ = c.Discard(n)
	}
}

func (s *server) do(c *reactor.Conn, args [][]byte) {
	if len(args) == 0 {
		return
	}
	cmd := strings.ToUpper(string(args[0]))
	arity := map[string]int{"PING": -1, "ECHO": 2, "SET": 3, "GET": 2, "DEL": -2}[cmd]
	switch {
	case arity == 0:
		fmt.Fprintf(c, "-ERR unknown command '%s'\r\n", args[0])
		return
	case arity > 0 && len(args) != arity, arity < 0 && len(args) < -arity:
		fmt.Fprintf(c, "-ERR wrong number of arguments for '%s' command\r\n", strings.ToLower(cmd))
		return
	}
	switch cmd {
	case "PING":
		if len(args) > 1 {
			writeBulk(c, args[1])
			return
		}
		_, _ = c.Write([]byte("+PONG\r\n"))
	case "ECHO":
		writeBulk(c, args[1])
	case "SET":
		v := bytes.Clone(args[2])
		s.db.mu.Lock()
		s.db.m[string(args[1])] = v
		s.db.mu.Unlock()
		_, _ = c.Write([]byte("+OK\r\n"))
	case "GET":
		s.db.mu.RLock()
		v, ok := s.db.m[string(args[1])]
		s.db.mu.RUnlock()
		if !ok {
			_, _ = c.Write([]byte("$-1\r\n"))
			return
		}
		writeBulk(c, v)
	case "DEL":
		n := 0
		s.db.mu.Lock()
		for _, k := range args[1:] {
			if _, ok := s.db.m[string(k)]; ok {
				delete(s.db.m, string(k))
				n++
			}
		}
		s.db.mu.Unlock()
		fmt.Fprintf(c, ":%d\r\n", n)
	}
}

func writeBulk(c *reactor.Conn, v []byte) {
	var hdr [24]byte
	b := append(hdr[:0], '$')
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, '\r', '\n')
	_, _ = c.Writev([][]byte{b, v, []byte("\r\n")})
}

func main() {
	backend := flag.String("backend", all.Default(), "loop backend: "+strings.Join(loop.Names(), ", "))
	addr := flag.String("addr", "127.0.0.1:6380", "address to listen on")
	loops := flag.Int("loops", 0, "number of loops (0: GOMAXPROCS)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, os.Stdout, *backend, *addr, *loops); err != nil {
		log.Fatal(err)
	}
}

func serve(ctx context.Context, out io.Writer, backend, addr string, loops int) error {
	srv, err := reactor.New(&server{db: &store{m: map[string][]byte{}}}, reactor.Options{Backend: backend, Loops: loops})
	if err != nil {
		return err
	}
	a, err := srv.Listen("tcp", addr)
	if err != nil {
		_ = srv.Close()
		return err
	}
	fmt.Fprintf(out, "listening on %s\n", a)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
