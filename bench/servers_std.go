package bench

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// EchoBufSize is the read buffer of each connection of the goroutine-per-
// connection echo servers (stdlib and evhub rows alike): the size of a
// bufio default buffer, a typical choice for such a server. It is part of
// every goroutine row's bytes per idle connection.
const EchoBufSize = 4096

// EchoConn writes back everything it reads from c until EOF or an error,
// then closes c: the echo handler of every goroutine-per-connection row.
func EchoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, EchoBufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ServeEcho accepts connections from ln and echoes each on its own
// goroutine. Temporary accept errors (EMFILE and the like) back off like
// net/http does; any other error is returned.
func ServeEcho(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if temporaryAccept(err) {
				delay = max(5*time.Millisecond, min(2*delay, time.Second))
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("bench: accept on %v: %w", ln.Addr(), err)
		}
		delay = 0
		go EchoConn(c)
	}
}

func temporaryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR)
}

// HTTPBodySize is the size of the body every HTTP row answers with.
const HTTPBodySize = 64

var httpBody = []byte(fmt.Sprintf("%-*s\r\n", HTTPBodySize-2, "evhub bench: a 64-byte keep-alive response body"))

// HTTPHandler answers every request with a fixed 64-byte body.
func HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Length"] = []string{strconv.Itoa(len(httpBody))}
		h["Content-Type"] = []string{"text/plain"}
		_, _ = w.Write(httpBody)
	})
}

// ServeHTTP serves HTTPHandler on ln with net/http.
func ServeHTTP(ln net.Listener) error {
	srv := &http.Server{
		Handler:           HTTPHandler(),
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if err := srv.Serve(ln); err != nil {
		return fmt.Errorf("bench: http serve on %v: %w", ln.Addr(), err)
	}
	return nil
}

// StartListener serves proto on ln in the background with the goroutine-per-
// connection servers (ServeEcho, ServeHTTP): the Start of the stdlib row and
// of every evhub row, which differ only in where ln comes from. A serving
// error ends the process with a message on stderr, which the orchestrator
// reports as a server that died.
func StartListener(proto Protocol, ln net.Listener) (net.Addr, error) {
	serve := ServeEcho
	switch proto {
	case Echo:
	case HTTP:
		serve = ServeHTTP
	default:
		_ = ln.Close()
		return nil, fmt.Errorf("bench: protocol %d not supported", proto)
	}
	go func() { fatal(serve(ln)) }()
	return ln.Addr(), nil
}

func init() {
	Register(Server{
		Name:      StdlibRow,
		Kind:      Baseline,
		Backend:   "netpoll",
		Protocols: Echo | HTTP,
		Doc:       "package net, a goroutine per connection (4 KiB buffer); net/http for HTTP",
		Start: func(proto Protocol, addr string) (net.Addr, error) {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, err
			}
			return StartListener(proto, ln)
		},
	})
}
