package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/evhub/evhub/internal/fakedns"
)

// describeDialErr is what a dial error shows of itself: its text (the
// ephemeral port of the resolver's socket masked), the *net.OpError's
// fields and the *net.DNSError's.
func describeDialErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	s := regexp.MustCompile(`127\.0\.0\.1:[0-9]+->`).ReplaceAllString(fmt.Sprintf("%T %q", err, err), "127.0.0.1:PORT->")
	var oe *net.OpError
	if errors.As(err, &oe) {
		s += fmt.Sprintf(" Op=%s Net=%s Source=%v Addr=%v", oe.Op, oe.Net, oe.Source, oe.Addr)
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		s += fmt.Sprintf(" Name=%q Server=%q IsNotFound=%v IsTimeout=%v", de.Name, de.Server, de.IsNotFound, de.IsTimeout)
	}
	return s
}

// TestResolverErrorsLikeNet: a dial from a task whose name does not
// resolve fails exactly as net.Dialer's with the same resolver does — a
// *net.OpError around net's *net.DNSError, IsNotFound for NXDOMAIN and an
// unknown port, IsTimeout for a server that never answers — and a Listen
// wraps the same *net.DNSError in a *net.OpError with Op "listen".
func TestResolverErrorsLikeNet(t *testing.T) {
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			h := openHub(t, name)
			cases := []struct {
				cfg      fakedns.Config
				network  string
				address  string
				timeout  time.Duration
				notFound bool
			}{
				{fakedns.Config{}, "tcp", "gone" + fakedns.NXSuffix + ":80", 10 * time.Second, true},
				{fakedns.Config{}, "udp", "gone" + fakedns.NXSuffix + ":53", 10 * time.Second, true},
				{fakedns.Config{}, "tcp", "a.evhub.test.:no-such-service", 10 * time.Second, true},
				{fakedns.Config{Drop: true}, "tcp", "hang.evhub.test.:80", 200 * time.Millisecond, false},
			}
			for _, c := range cases {
				dns := fakeDNS(t, c.cfg)
				h.SetResolver(dns.Resolver())
				ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
				d := net.Dialer{Resolver: dns.Resolver()}
				_, stdErr := d.DialContext(ctx, c.network, c.address)
				cancel()
				var de *net.DNSError
				require.ErrorAs(t, stdErr, &de, "net's dial of %s", c.address)
				require.Equal(t, c.notFound, de.IsNotFound, "net's IsNotFound for %s", c.address)
				require.Equal(t, !c.notFound, de.IsTimeout, "net's IsTimeout for %s", c.address)

				var dialErr, listenErr error
				task := goTask(t, h, func(context.Context) error {
					ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
					defer cancel()
					_, dialErr = h.DialContext(ctx, c.network, c.address)
					if c.notFound && c.network == "tcp" {
						_, listenErr = h.Listen(c.network, c.address)
					}
					return nil
				})
				require.NoError(t, joinTask(t, task))
				assert.Equal(t, describeDialErr(stdErr), describeDialErr(dialErr), "dial %s %s from a task", c.network, c.address)
				if c.notFound && c.network == "tcp" {
					var oe *net.OpError
					require.ErrorAs(t, listenErr, &oe, "Listen %s", c.address)
					assert.Equal(t, "listen", oe.Op)
					var lde *net.DNSError
					require.ErrorAs(t, listenErr, &lde, "Listen %s", c.address)
					assert.Equal(t, *de, *lde, "Listen's *net.DNSError is net's dial's")
				}
			}
		})
	}
}
