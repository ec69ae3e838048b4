package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/nettest"
)

// httpCases: net/http served on a listener of the network and used through
// its DialContext.
func netHTTPCases() []netCase {
	return []netCase{
		{area: "http", name: "KeepAlive", run: func(t *testing.T, e *env) { httpKeepAlive(t, e, false) }},
		{area: "http", name: "KeepAliveStdClients", run: func(t *testing.T, e *env) { httpKeepAlive(t, e, true) }},
		{area: "http", name: "LargeBody", run: func(t *testing.T, e *env) { httpLargeBody(t, e, false) }},
		{area: "http", name: "LargeBodyStdClient", run: func(t *testing.T, e *env) { httpLargeBody(t, e, true) }},
	}
}

// httpServe serves h on a listener of the network until the case ends.
func httpServe(t *testing.T, e *env, h http.Handler, accepted *atomic.Int32) string {
	ln := e.net().listen("tcp")
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew && accepted != nil {
				accepted.Add(1)
			}
		},
	}
	served := goErr(func() error { return srv.Serve(ln) })
	t.Cleanup(func() {
		assert.NoError(t, srv.Close(), "http.Server.Close")
		err := waitFor(t, served, 10*time.Second, "http.Server.Serve after Close")
		assert.ErrorIs(t, err, http.ErrServerClosed, "http.Server.Serve")
	})
	return "http://" + ln.Addr().String()
}

// httpClient is a keep-alive client that dials through the network (or
// the standard library).
func httpClient(t *testing.T, n Network) *http.Client {
	tr := &http.Transport{
		DialContext:         n.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// httpKeepAlive: several keep-alive clients, many requests each, served by
// net/http on a listener of the network. With stdClients the clients dial
// through the standard library, so a network that only listens is tested
// too.
func httpKeepAlive(t *testing.T, e *env, stdClients bool) {
	client := e.n
	if stdClients {
		client = StdNetwork
	} else {
		e.needsStream("tcp")
	}
	var accepted atomic.Int32
	url := httpServe(t, e, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "reply to "+r.URL.Query().Get("q"))
	}), &accepted)
	const clients, requests = 4, 50
	var wg sync.WaitGroup
	reused := make([]atomic.Int32, clients)
	errs := make(chan error, clients)
	for ci := range clients {
		cl := httpClient(t, client)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for ri := range requests {
					q := fmt.Sprintf("c%d-r%d", ci, ri)
					trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
						if info.Reused {
							reused[ci].Add(1)
						}
					}}
					req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/?q="+q, nil)
					if err != nil {
						return err
					}
					resp, err := cl.Do(req)
					if err != nil {
						return fmt.Errorf("request %s: %w", q, err)
					}
					body, err := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if err != nil {
						return fmt.Errorf("request %s: body: %w", q, err)
					}
					if string(body) != "reply to "+q || resp.StatusCode != 200 {
						return fmt.Errorf("request %s: %d %q", q, resp.StatusCode, body)
					}
				}
				return nil
			}()
		}()
	}
	for range clients {
		assert.NoError(t, waitFor(t, errs, 30*time.Second, "http clients"))
	}
	wg.Wait()
	// Each client's requests ran one after another on one kept-alive conn.
	// net/http gives up a conn whose request write it has not seen
	// complete within 50ms of the response (maxWriteWaitBeforeConnReuse),
	// which a loaded machine can cause now and then: allow a few fresh
	// conns, not a pattern.
	const slack = requests / 10
	total := int32(0)
	for ci := range clients {
		n := reused[ci].Load()
		total += n
		assert.GreaterOrEqual(t, n, int32(requests-1-slack), "client %d: requests on a reused conn", ci)
	}
	t.Logf("%d of %d requests on a reused conn; the server accepted %d conns for %d clients",
		total, clients*requests, accepted.Load(), clients)
	assert.LessOrEqual(t, accepted.Load(), int32(clients+slack), "conns the server accepted")
	assert.GreaterOrEqual(t, accepted.Load(), int32(clients), "conns the server accepted")
}

// httpLargeBody: 4 MiB request bodies echoed back as they stream in. With
// stdClient the client dials through the standard library, so a network
// that only listens is tested as the server.
func httpLargeBody(t *testing.T, e *env, stdClient bool) {
	client := e.n
	if stdClient {
		client = StdNetwork
	} else {
		e.needsStream("tcp")
	}
	const size = 4 << 20
	url := httpServe(t, e, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Echo the body back, streaming.
		w.Header().Set("Content-Length", r.Header.Get("Content-Length"))
		_, _ = io.Copy(w, r.Body)
	}), nil)
	cl := httpClient(t, client)
	for i := range 3 {
		pt := newPattern(uint64(200 + i))
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(pt.write(pw, size, 64<<10)) }()
		req, err := http.NewRequest("POST", url+"/echo", pr)
		require.NoError(t, err)
		req.ContentLength = size
		resp, err := cl.Do(req)
		require.NoError(t, err, "POST %d", i)
		assert.Equal(t, strconv.Itoa(size), resp.Header.Get("Content-Length"))
		err = pt.read(resp.Body, size, 64<<10, true)
		_ = resp.Body.Close()
		require.NoError(t, err, "echoed body %d", i)
	}
}

// tlsCases: a TLS handshake and 1 MiB each way over conns of the network.
func netTLSCases() []netCase {
	return []netCase{
		{area: "tls", name: "HandshakeTCP", run: func(t *testing.T, e *env) { tlsExchange(t, e, "tcp", false) }},
		{area: "tls", name: "HandshakeUnix", run: func(t *testing.T, e *env) { tlsExchange(t, e, "unix", false) }},
		{area: "tls", name: "ServerTCP", run: func(t *testing.T, e *env) { tlsExchange(t, e, "tcp", true) }},
		{area: "tls", name: "ServerUnix", run: func(t *testing.T, e *env) { tlsExchange(t, e, "unix", true) }},
	}
}

var (
	tlsOnce sync.Once
	tlsCert tls.Certificate
	tlsPool *x509.CertPool
	tlsErr  error
)

// testCert returns a self-signed ECDSA certificate for "evhub.test" and a
// pool that trusts it, made once per process.
func testCert() (tls.Certificate, *x509.CertPool, error) {
	tlsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tlsErr = fmt.Errorf("generate key: %w", err)
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "evhub.test"},
			DNSNames:              []string{"evhub.test"},
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			tlsErr = fmt.Errorf("create certificate: %w", err)
			return
		}
		parsed, err := x509.ParseCertificate(der)
		if err != nil {
			tlsErr = fmt.Errorf("parse certificate: %w", err)
			return
		}
		tlsPool = x509.NewCertPool()
		tlsPool.AddCert(parsed)
		tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed}
	})
	return tlsCert, tlsPool, tlsErr
}

// tlsExchange: a TLS handshake, then 1 MiB each way at once, then
// close_notify each way. With serverOnly the client dials through the
// standard library and only the server side is the network's.
func tlsExchange(t *testing.T, e *env, nw string, serverOnly bool) {
	dialer := e.n
	if serverOnly {
		dialer = StdNetwork
	} else {
		e.needsStream(nw)
	}
	cert, pool, err := testCert()
	require.NoError(t, err, "self-signed certificate")
	d, a := e.net().connectVia(dialer, e.net().listen(nw), nil)
	for _, c := range []net.Conn{d, a} {
		require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	}
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	cli := tls.Client(d, &tls.Config{RootCAs: pool, ServerName: "evhub.test", MinVersion: tls.VersionTLS12})
	e.track(srv)
	e.track(cli)
	hs := goErr(func() error { return srv.HandshakeContext(context.Background()) })
	require.NoError(t, cli.HandshakeContext(context.Background()), "client handshake")
	require.NoError(t, waitFor(t, hs, 30*time.Second, "server handshake"), "server handshake")
	st := cli.ConnectionState()
	assert.True(t, st.HandshakeComplete)
	assert.Equal(t, "evhub.test", st.PeerCertificates[0].Subject.CommonName)

	const size = 1 << 20
	pc, ps := newPattern(7), newPattern(8)
	errs := []<-chan error{
		goErr(func() error {
			if err := pc.write(cli, size, 50_000); err != nil {
				return err
			}
			return cli.CloseWrite()
		}),
		goErr(func() error {
			if err := ps.write(srv, size, 70_000); err != nil {
				return err
			}
			return srv.CloseWrite()
		}),
		goErr(func() error { return ps.read(cli, size, 32<<10, true) }),
		goErr(func() error { return pc.read(srv, size, 20_000, true) }),
	}
	for i, ch := range errs {
		require.NoError(t, waitFor(t, ch, 40*time.Second, "TLS transfer"), "TLS transfer %d", i)
	}
}

// nettestCases: golang.org/x/net/nettest.TestConn, the peer suite for
// net.Conn, on pipes made of a dialed and an accepted conn.
func netNettestCases() []netCase {
	return []netCase{
		{area: "nettest", name: "tcp", run: func(t *testing.T, e *env) { nettestConn(t, e, "tcp", false) }},
		{area: "nettest", name: "unix", run: func(t *testing.T, e *env) { nettestConn(t, e, "unix", false) }},
		{area: "nettest", name: "tcpServer", run: func(t *testing.T, e *env) { nettestConn(t, e, "tcp", true) }},
		{area: "nettest", name: "unixServer", run: func(t *testing.T, e *env) { nettestConn(t, e, "unix", true) }},
	}
}

// nettestConn runs nettest.TestConn on pipes of a dialed and an accepted
// conn. With serverOnly the dial goes through the standard library and the
// accepted conn (the network's) comes first, the one nettest sets
// deadlines on: a network that can only listen is still tested as a
// server.
func nettestConn(t *testing.T, e *env, nw string, serverOnly bool) {
	dial := e.n.Dial
	if serverOnly {
		dial = StdNetwork.Dial
	} else {
		e.needsStream(nw)
	}
	mp := func() (c1, c2 net.Conn, stop func(), err error) {
		addr := "127.0.0.1:0"
		if isUnix(nw) {
			addr = e.net().path(e.net().nextName("n"))
		}
		ln, err := e.n.Listen(nw, addr)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("listen: %w", err)
		}
		defer ln.Close()
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			ch <- res{c, err}
		}()
		c1, err = dial(nw, ln.Addr().String())
		if err != nil {
			_ = ln.Close()
			<-ch
			return nil, nil, nil, fmt.Errorf("dial: %w", err)
		}
		var r res
		select {
		case r = <-ch:
		case <-time.After(10 * time.Second):
			_ = ln.Close()
			if r = <-ch; !isNil(r.c) {
				_ = r.c.Close()
			}
			r.err = errors.New("accept still blocked 10s after a successful dial")
		}
		if r.err != nil {
			_ = c1.Close()
			return nil, nil, nil, fmt.Errorf("accept: %w", r.err)
		}
		c2 = r.c
		e.track(c1)
		e.track(c2)
		stop = func() {
			_ = c1.Close()
			_ = c2.Close()
		}
		if serverOnly {
			return c2, c1, stop, nil
		}
		return c1, c2, stop, nil
	}
	nettest.TestConn(t, mp)
}
