//go:build linux

package evio

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/tidwall/evio"
)

// evio v1.0.8 keeps the facts every adapter needs private: a connection's
// fd, how many output bytes it still holds, the fds of the epoll instance
// that polls it and of its wake-up eventfd, and how many connections its
// loop holds. Without them nothing could tell when
// evio's output buffer has drained (it has no write-progress event, and
// output handed back after a Wake replaces what it still holds), set
// socket options, half-close, or pause reading. They are read here,
// read-only, through reflect — no unsafe, no writes — and only on the evio
// goroutine that owns the connection, so no read races with evio's own
// writes. The layout is checked once against the running binary; a
// different evio fails loudly (errInternals) instead of misbehaving, and
// TestEvioInternals pins it.

// internals are the field indexes of evio's *conn, *loop and
// *internal.Poll that the backend reads.
type internals struct {
	connType reflect.Type // *evio.conn
	fd       int          // conn.fd int
	out      int          // conn.out []byte
	loop     int          // conn.loop *loop
	poll     int          // loop.poll *internal.Poll
	fdconns  int          // loop.fdconns map[int]*conn
	pollFD   int          // Poll.fd int (the epoll fd)
	pollWFD  int          // Poll.wfd int (the eventfd of Wake)
}

var (
	internalsOnce sync.Once
	layout        internals
	errInternals  error
)

// field finds a struct field by name and kind.
func field(t reflect.Type, name string, kind reflect.Kind) (int, reflect.Type, error) {
	f, ok := t.FieldByName(name)
	if !ok || len(f.Index) != 1 || f.Type.Kind() != kind {
		return 0, nil, fmt.Errorf("evio: %s has no %s field %q: this backend reads evio v1.0.8's connection layout", t, kind, name)
	}
	return f.Index[0], f.Type, nil
}

// learnLayout checks the layout of evio's connection type once, from the
// first connection evio hands over.
func learnLayout(c evio.Conn) error {
	internalsOnce.Do(func() {
		errInternals = func() error {
			pt := reflect.TypeOf(c)
			if pt.Kind() != reflect.Pointer || pt.Elem().Kind() != reflect.Struct {
				return fmt.Errorf("evio: connection type %v is not a pointer to a struct", pt)
			}
			ct := pt.Elem()
			var (
				in  = internals{connType: pt}
				err error
				lt  reflect.Type
				ppt reflect.Type
			)
			if in.fd, _, err = field(ct, "fd", reflect.Int); err != nil {
				return err
			}
			var outT reflect.Type
			if in.out, outT, err = field(ct, "out", reflect.Slice); err != nil {
				return err
			}
			if outT.Elem().Kind() != reflect.Uint8 {
				return fmt.Errorf("evio: %s.out is %v, not []byte", ct, outT)
			}
			if in.loop, lt, err = field(ct, "loop", reflect.Pointer); err != nil {
				return err
			}
			if in.poll, ppt, err = field(lt.Elem(), "poll", reflect.Pointer); err != nil {
				return err
			}
			if in.fdconns, _, err = field(lt.Elem(), "fdconns", reflect.Map); err != nil {
				return err
			}
			if in.pollFD, _, err = field(ppt.Elem(), "fd", reflect.Int); err != nil {
				return err
			}
			if in.pollWFD, _, err = field(ppt.Elem(), "wfd", reflect.Int); err != nil {
				return err
			}
			layout = in
			return nil
		}()
	})
	if errInternals != nil {
		return errInternals
	}
	if reflect.TypeOf(c) != layout.connType {
		return fmt.Errorf("evio: unexpected connection type %T", c)
	}
	return nil
}

// connFD is the fd evio accepted for c. Evio goroutine only.
func connFD(c evio.Conn) int {
	return int(reflect.ValueOf(c).Elem().Field(layout.fd).Int())
}

// outLen is how many output bytes evio still holds for c. Evio goroutine
// only.
func outLen(c evio.Conn) int {
	return reflect.ValueOf(c).Elem().Field(layout.out).Len()
}

func pollOf(c evio.Conn) reflect.Value {
	return reflect.ValueOf(c).Elem().Field(layout.loop).Elem().Field(layout.poll).Elem()
}

// epollFD is the fd of the epoll instance that polls c, and wakeFD the
// eventfd of its Wake. Evio goroutine only.
func epollFD(c evio.Conn) int { return int(pollOf(c).Field(layout.pollFD).Int()) }
func wakeFD(c evio.Conn) int  { return int(pollOf(c).Field(layout.pollWFD).Int()) }

// openConns is how many connections evio's loop still holds. Evio
// goroutine (or, once evio's loop has exited, the Serve goroutine) only.
func openConns(c evio.Conn) int {
	return reflect.ValueOf(c).Elem().Field(layout.loop).Elem().Field(layout.fdconns).Len()
}
