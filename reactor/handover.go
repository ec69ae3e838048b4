package reactor

import (
	"errors"
	"fmt"
	"net"

	"github.com/evhub/evhub/loop"
	"github.com/evhub/evhub/scheduler"
)

// ErrHandedOver is the reason OnClose gives for a connection that left the
// reactor through HandOver.
var ErrHandedOver = errors.New("reactor: connection handed over to a hub")

type handover struct {
	hub *scheduler.Hub
	fn  func(net.Conn, error)
}

func (ho *handover) fail(c *Conn, reason error) {
	if reason == nil {
		reason = net.ErrClosed
	}
	fn := ho.fn
	c.el.protect(nil, func() { fn(nil, fmt.Errorf("reactor: hand-over of a connection that closed first: %w", reason)) })
}

// HandOver moves the connection to hub as an ordinary blocking net.Conn,
// for example after a protocol upgrade. Reading stops at once; once the
// pending output is sent, the socket leaves the loop, OnClose runs with
// ErrHandedOver, and fn(conn, nil) is called on the loop goroutine with a
// hub connection whose Read returns first the input not taken here, then
// what follows on the socket: no byte is lost or reordered. fn must not
// block (start a goroutine or a hub task). If the connection closes
// first, fn gets the error. Loops that own their sockets (StreamServer)
// cannot give one away: the error wraps errors.ErrUnsupported.
func (c *Conn) HandOver(hub *scheduler.Hub, fn func(nc net.Conn, err error)) error {
	if hub == nil || fn == nil {
		return errors.New("reactor: HandOver with a nil hub or function")
	}
	if c.flags&fStream != 0 {
		return fmt.Errorf("reactor: HandOver: %w", loop.Unsupported(c.el.l, loop.CapWatch))
	}
	if c.flags&(fClosed|fClosing) != 0 {
		return c.closedErr("handover")
	}
	x := c.extra()
	if x.handover != nil {
		return errors.New("reactor: HandOver called twice")
	}
	x.handover = &handover{hub: hub, fn: fn}
	c.markDirty()
	return nil
}

// handOverNow gives the socket and its unread input to the hub; the
// output is empty.
func (c *Conn) handOverNow() {
	el := c.el
	ho := c.x.handover
	c.x.handover = nil
	// Stop reading first: a Completer's receive gives the bytes it
	// already took as it stops, and they go with the rest.
	c.flags &^= fArmedR
	c.stopWatch()
	rest := append([]byte(nil), c.input()...)
	fd := int(c.fd)
	c.flags |= fGiven // finishClose must not close it
	c.finishClose(ErrHandedOver)
	nc, err := ho.hub.Adopt(fd, rest)
	el.protect(nil, func() { ho.fn(nc, err) })
}
