// Package fakedns is a DNS server on loopback for tests: it answers A
// queries with an address derived from the name (or one it was given),
// after a delay, or drops every query, so that lookups can be made to
// succeed, fail or hang on demand without the internet.
package fakedns

import (
	"context"
	"errors"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// NXSuffix: names ending in it get NXDOMAIN.
const NXSuffix = ".nx.evhub.test."

// Config says how the server answers.
type Config struct {
	// Drop makes the server read every query and never answer.
	Drop bool
	// Delay is how long each answer waits before it is sent.
	Delay time.Duration
	// Patient makes the connections of Resolver ignore deadlines, so that
	// a lookup of a dropped query hangs until its context ends (or the
	// server closes) rather than for the resolver's own per-query timeout
	// (resolv.conf's, 5 s by default), which a loaded machine can reach
	// before a test has done what it does while lookups hang.
	Patient bool
	// Hosts maps fully qualified names ("svc.evhub.test.") to their A or
	// AAAA address; other names get IPv4For(name).
	Hosts map[string]netip.Addr
}

// Server is a running fake DNS server.
type Server struct {
	cfg     Config
	conn    *net.UDPConn
	queries atomic.Int64
	wg      sync.WaitGroup
	mu      sync.Mutex
	timers  map[*time.Timer]struct{}
	clients map[net.Conn]struct{}
	closed  bool
}

// Start listens on 127.0.0.1 (a random UDP port) and serves until Close.
func Start(cfg Config) (*Server, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	// Room for a burst of queries (as much as the system allows).
	_ = c.SetReadBuffer(4 << 20)
	s := &Server{cfg: cfg, conn: c, timers: map[*time.Timer]struct{}{}, clients: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the server's UDP address.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Queries is the number of queries received so far.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Resolver returns a Go resolver that sends every query to s. Close
// closes the connections it dialed, so that lookups still waiting for an
// answer end then.
func (s *Server) Resolver() *net.Resolver {
	addr := s.Addr()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		s.clients[c] = struct{}{}
		if s.cfg.Patient {
			return &patientConn{clientConn{UDPConn: c.(*net.UDPConn), s: s}}, nil
		}
		return &clientConn{UDPConn: c.(*net.UDPConn), s: s}, nil
	}}
}

// clientConn forgets itself on Close. It stays a net.PacketConn, which is
// how the Go resolver tells a datagram connection.
type clientConn struct {
	*net.UDPConn
	s *Server
}

func (c *clientConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.clients, c.UDPConn)
	c.s.mu.Unlock()
	return c.UDPConn.Close()
}

// Close stops the server; pending delayed answers are dropped.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for t := range s.timers {
		if t.Stop() {
			s.wg.Done()
		}
	}
	s.timers = nil
	for c := range s.clients {
		c.Close()
	}
	s.mu.Unlock()
	err := s.conn.Close()
	s.wg.Wait()
	return err
}

// patientConn ignores deadlines (Config.Patient).
type patientConn struct{ clientConn }

func (c *patientConn) SetDeadline(time.Time) error      { return nil }
func (c *patientConn) SetReadDeadline(time.Time) error  { return nil }
func (c *patientConn) SetWriteDeadline(time.Time) error { return nil }

// IPv4For is the address the server gives a name it was not told about.
func IPv4For(name string) netip.Addr {
	f := fnv.New32a()
	f.Write([]byte(strings.ToLower(name)))
	v := f.Sum32()
	return netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
}

func (s *Server) serve() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.queries.Add(1)
		if s.cfg.Drop {
			continue
		}
		resp, ok := s.answer(buf[:n])
		if !ok {
			continue
		}
		if s.cfg.Delay <= 0 {
			_, _ = s.conn.WriteToUDPAddrPort(resp, from)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.wg.Add(1)
		var t *time.Timer
		t = time.AfterFunc(s.cfg.Delay, func() {
			defer s.wg.Done()
			s.mu.Lock()
			delete(s.timers, t)
			s.mu.Unlock()
			_, _ = s.conn.WriteToUDPAddrPort(resp, from)
		})
		s.timers[t] = struct{}{}
		s.mu.Unlock()
	}
}

func (s *Server) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	qs, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := qs.Name.String()
	rcode := dnsmessage.RCodeSuccess
	var addr netip.Addr
	switch {
	case strings.HasSuffix(strings.ToLower(name), NXSuffix):
		rcode = dnsmessage.RCodeNameError
	default:
		if a, ok := s.cfg.Hosts[strings.ToLower(name)]; ok {
			addr = a
		} else {
			addr = IPv4For(name)
		}
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(qs) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rh := dnsmessage.ResourceHeader{Name: qs.Name, Class: dnsmessage.ClassINET, TTL: 60}
	if rcode == dnsmessage.RCodeSuccess {
		switch {
		case qs.Type == dnsmessage.TypeA && addr.Is4():
			if b.AResource(rh, dnsmessage.AResource{A: addr.As4()}) != nil {
				return nil, false
			}
		case qs.Type == dnsmessage.TypeAAAA && addr.Is6() && !addr.Is4In6():
			if b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: addr.As16()}) != nil {
				return nil, false
			}
		}
	}
	msg, err := b.Finish()
	return msg, err == nil
}
