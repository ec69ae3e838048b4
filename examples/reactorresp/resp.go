package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// errIncomplete: the buffered input ends inside a command; wait for more.
var errIncomplete = errors.New("incomplete command")

const (
	maxArgs    = 1024
	maxBulkLen = 1 << 20
)

// parseCommand reads one command from in: a RESP array of bulk strings
// ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or an inline command ("PING\r\n").
// It returns the arguments (slices of in, valid as long as in is) and the
// number of bytes the command took; errIncomplete if in ends inside it, or
// a protocol error naming what was wrong.
func parseCommand(in []byte, args [][]byte) ([][]byte, int, error) {
	if len(in) == 0 {
		return nil, 0, errIncomplete
	}
	if in[0] != '*' {
		line, n, err := readLine(in, 0)
		if err != nil {
			return nil, 0, err
		}
		return append(args, bytes.Fields(line)...), n, nil
	}
	line, pos, err := readLine(in, 1)
	if err != nil {
		return nil, 0, err
	}
	count, err := strconv.Atoi(string(line))
	if err != nil || count < 0 || count > maxArgs {
		return nil, 0, fmt.Errorf("Protocol error: invalid multibulk length %q", line)
	}
	for range count {
		if pos >= len(in) {
			return nil, 0, errIncomplete
		}
		if in[pos] != '$' {
			return nil, 0, fmt.Errorf("Protocol error: expected '$', got '%c'", in[pos])
		}
		line, next, err := readLine(in, pos+1)
		if err != nil {
			return nil, 0, err
		}
		size, err := strconv.Atoi(string(line))
		if err != nil || size < 0 || size > maxBulkLen {
			return nil, 0, fmt.Errorf("Protocol error: invalid bulk length %q", line)
		}
		if next+size+2 > len(in) {
			return nil, 0, errIncomplete
		}
		if in[next+size] != '\r' || in[next+size+1] != '\n' {
			return nil, 0, errors.New("Protocol error: bulk string not followed by CRLF")
		}
		args = append(args, in[next:next+size])
		pos = next + size + 2
	}
	return args, pos, nil
}

// readLine returns the line starting at in[from:] without its CRLF and the
// offset after it.
func readLine(in []byte, from int) ([]byte, int, error) {
	i := bytes.IndexByte(in[from:], '\n')
	if i < 0 {
		if len(in)-from > 64<<10 {
			return nil, 0, errors.New("Protocol error: too big inline request")
		}
		return nil, 0, errIncomplete
	}
	line := in[from : from+i]
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, from + i + 1, nil
}
