package scheduler

import (
	"context"
	"net"
	"net/netip"
)

// Name resolution that never blocks the hub. A lookup made on the hub's
// goroutine would stop every task of the hub for as long as a DNS server
// takes to answer or time out (seconds with the default resolv.conf). A
// lookup from a task therefore runs on a goroutine of its own while the
// task is parked; the Go resolver waits on the runtime's netpoller there,
// and a cgo lookup is bounded by package net itself. From an ordinary
// goroutine a lookup is simply made in place.

// SetResolver sets the resolver the hub uses for Dial, DialContext,
// Listen, ListenPacket and its Resolver's lookups; nil restores
// net.DefaultResolver, the default. A test can point it at a DNS server of
// its own:
//
//	h.SetResolver(&net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
//		var d net.Dialer
//		return d.DialContext(ctx, "udp", "127.0.0.1:5353")
//	}})
func (h *Hub) SetResolver(r *net.Resolver) { h.x.resolver.Store(r) }

func (h *Hub) netResolver() *net.Resolver {
	if r := h.x.resolver.Load(); r != nil {
		return r
	}
	return net.DefaultResolver
}

// Resolver returns the hub's lookups: the methods of net.Resolver, with
// the answers and errors (*net.DNSError, IsNotFound, IsTimeout) of the
// resolver set by SetResolver, that park a calling task instead of
// blocking its hub.
func (h *Hub) Resolver() *Resolver { return &Resolver{h: h} }

// Resolver looks names up for a hub; see Hub.Resolver. Each method
// behaves as net.Resolver's. Called from a task, the lookup runs off the
// hub and the task is parked until it returns; cancelling the task (or
// ctx) ends the lookup with net's own error for a cancelled context, at
// once (as net.Resolver.LookupIPAddr does; some other lookups of net's
// notice a cancelled context only when their query times out).
type Resolver struct{ h *Hub }

// lookup runs fn with the hub's resolver, off the hub when called from a
// task. name is what a cancelled lookup's *net.DNSError names.
func lookup[T any](h *Hub, ctx context.Context, name string, fn func(r *net.Resolver, ctx context.Context) (T, error)) (T, error) {
	r := h.netResolver()
	t := currentTask()
	if t == nil {
		return fn(r, ctx)
	}
	// The task's context ends the lookup as ctx does.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	var (
		v   T
		err error
	)
	w := &waiter{t: t}
	go func() {
		defer w.wake()
		v, err = fn(r, lctx)
	}()
	werr := w.wait(lctx)
	if w.fired.Load() {
		return v, err
	}
	// Some of net's lookups notice a cancelled context only when their
	// current query times out: the wait ends now, with the error net gives
	// a lookup whose context ends.
	var zero T
	return zero, ctxDNSError(werr, name)
}

// ctxDNSError is net's error for a lookup of name whose context ended
// with err: a *net.DNSError that unwraps to net's "operation was
// canceled" or "i/o timeout" (and so to context.Canceled or
// context.DeadlineExceeded), with IsTimeout as net sets it.
func ctxDNSError(err error, name string) error {
	e := mapErr(err)
	de := &net.DNSError{UnwrapErr: e, Err: e.Error(), Name: name}
	if ne, ok := e.(net.Error); ok {
		de.IsTimeout = ne.Timeout()
		de.IsTemporary = ne.Temporary() //lint:ignore SA1019 net sets it so
	}
	return de
}

// LookupHost is net.Resolver.LookupHost.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	return lookup(r.h, ctx, host, func(nr *net.Resolver, ctx context.Context) ([]string, error) { return nr.LookupHost(ctx, host) })
}

// LookupIPAddr is net.Resolver.LookupIPAddr.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return lookup(r.h, ctx, host, func(nr *net.Resolver, ctx context.Context) ([]net.IPAddr, error) { return nr.LookupIPAddr(ctx, host) })
}

// LookupIP is net.Resolver.LookupIP.
func (r *Resolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, error) {
	return lookup(r.h, ctx, host, func(nr *net.Resolver, ctx context.Context) ([]net.IP, error) { return nr.LookupIP(ctx, network, host) })
}

// LookupNetIP is net.Resolver.LookupNetIP.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return lookup(r.h, ctx, host, func(nr *net.Resolver, ctx context.Context) ([]netip.Addr, error) {
		return nr.LookupNetIP(ctx, network, host)
	})
}

// LookupPort is net.Resolver.LookupPort.
func (r *Resolver) LookupPort(ctx context.Context, network, service string) (int, error) {
	return lookup(r.h, ctx, network+"/"+service, func(nr *net.Resolver, ctx context.Context) (int, error) { return nr.LookupPort(ctx, network, service) })
}

// LookupAddr is net.Resolver.LookupAddr.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return lookup(r.h, ctx, addr, func(nr *net.Resolver, ctx context.Context) ([]string, error) { return nr.LookupAddr(ctx, addr) })
}

// LookupCNAME is net.Resolver.LookupCNAME.
func (r *Resolver) LookupCNAME(ctx context.Context, host string) (string, error) {
	return lookup(r.h, ctx, host, func(nr *net.Resolver, ctx context.Context) (string, error) { return nr.LookupCNAME(ctx, host) })
}

// LookupMX is net.Resolver.LookupMX.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return lookup(r.h, ctx, name, func(nr *net.Resolver, ctx context.Context) ([]*net.MX, error) { return nr.LookupMX(ctx, name) })
}

// LookupNS is net.Resolver.LookupNS.
func (r *Resolver) LookupNS(ctx context.Context, name string) ([]*net.NS, error) {
	return lookup(r.h, ctx, name, func(nr *net.Resolver, ctx context.Context) ([]*net.NS, error) { return nr.LookupNS(ctx, name) })
}

// LookupTXT is net.Resolver.LookupTXT.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return lookup(r.h, ctx, name, func(nr *net.Resolver, ctx context.Context) ([]string, error) { return nr.LookupTXT(ctx, name) })
}

// LookupSRV is net.Resolver.LookupSRV.
func (r *Resolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	type srv struct {
		cname string
		addrs []*net.SRV
	}
	v, err := lookup(r.h, ctx, name, func(nr *net.Resolver, ctx context.Context) (srv, error) {
		cname, addrs, err := nr.LookupSRV(ctx, service, proto, name)
		return srv{cname, addrs}, err
	})
	return v.cname, v.addrs, err
}

// listenAddress resolves the host of a Listen or ListenPacket address
// through the hub's resolver — off the hub from a task — and returns the
// address with an IP literal chosen as net.Listen chooses (the first IPv4
// address, else the first). A literal, an empty host or a unix path is
// returned as it is; so is any address from a goroutine when no resolver
// was set, which net then resolves exactly as before.
func (h *Hub) listenAddress(network string, kind netKind, address string) (string, error) {
	if kind != kindTCP && kind != kindUDP {
		return address, nil
	}
	if currentTask() == nil && h.x.resolver.Load() == nil {
		return address, nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil || host == "" {
		return address, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return address, nil
	}
	ias, err := h.Resolver().LookupIPAddr(context.Background(), host)
	if err != nil {
		return "", err
	}
	var pick *net.IPAddr
	for i := range ias {
		a := &ias[i]
		is4 := a.IP.To4() != nil
		switch network[len(network)-1] {
		case '4':
			if !is4 {
				continue
			}
		case '6':
			if is4 {
				continue
			}
		}
		if pick == nil || (is4 && pick.IP.To4() == nil) {
			pick = a
		}
	}
	if pick == nil {
		return "", &net.AddrError{Err: errNoSuitable, Addr: host}
	}
	return net.JoinHostPort(pick.String(), port), nil
}
