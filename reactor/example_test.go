package reactor_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"

	"github.com/evhub/evhub/reactor"
)

// upper answers every line with the line in upper case. It shows the input
// view: a partial line stays buffered until its newline arrives.
type upper struct{}

func (upper) OnOpen(c *reactor.Conn) {}

func (upper) OnData(c *reactor.Conn) {
	for {
		in, _ := c.Peek(-1)
		i := strings.IndexByte(string(in), '\n')
		if i < 0 {
			return // wait for the rest of the line
		}
		line, _ := c.Next(i + 1)
		_, _ = c.Write([]byte(strings.ToUpper(string(line))))
	}
}

func (upper) OnClose(c *reactor.Conn, err error) {}

func Example() {
	srv, err := reactor.New(upper{}, reactor.Options{Backend: "netpoll", Loops: 2})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	addr, err := srv.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}

	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hello, ")
	fmt.Fprint(c, "reactor\nbye\n")
	r := bufio.NewReader(c)
	for range 2 {
		line, _ := r.ReadString('\n')
		fmt.Print(line)
	}
	// Output:
	// HELLO, REACTOR
	// BYE
}
