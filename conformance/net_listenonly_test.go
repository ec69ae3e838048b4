package conformance_test

import (
	"context"
	"net"
	"sort"
	"strings"
	"testing"

	"github.com/evhub/evhub/conformance"
	"github.com/evhub/evhub/loop"
)

// listenOnly is the standard library with dialing and packet sockets taken
// away, declared through loop.Limited as a hub on evio declares them. The
// suite must still test it on every case that is not about dialing or
// packets, through the conns it accepts.
type listenOnly struct{ conformance.Network }

var listenOnlyMissing = map[loop.Capability]string{
	loop.CapDial:   "this test network only listens",
	loop.CapWatch:  "this test network watches no fd of its own",
	loop.CapPacket: "this test network has no packet sockets",
}

func (listenOnly) Unsupported() map[loop.Capability]string { return listenOnlyMissing }

func unsupported(c loop.Capability) error {
	return &loop.UnsupportedError{Backend: "listenonly", Capability: c, Reason: listenOnlyMissing[c]}
}

func (listenOnly) Dial(network, address string) (net.Conn, error) {
	return nil, unsupported(loop.CapDial)
}

func (listenOnly) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, unsupported(loop.CapDial)
}

func (listenOnly) ListenPacket(network, address string) (net.PacketConn, error) {
	return nil, unsupported(loop.CapPacket)
}

// listenOnlyNA lists, with the reason, the cases a network that only
// listens cannot run. Every other case must run (the udp and unixgram
// areas are packet cases as a whole).
var listenOnlyNA = map[string]string{
	"tcp/DialLocalhost":                   "dials",
	"errors/DialRefusedTCP":               "dials",
	"errors/DialCanceledTCP":              "dials",
	"errors/DialExpiredTCP":               "dials",
	"errors/DialRefusedUnix":              "dials",
	"errors/DialCanceledUnix":             "dials",
	"errors/DialExpiredUnix":              "dials",
	"errors/DialUnixMissing":              "dials",
	"errors/DialBadAddress":               "dials",
	"errors/UnknownNetworkDial":           "dials",
	"errors/DialRefusedUDP":               "dials, packets",
	"http/KeepAlive":                      "the network is the client",
	"http/LargeBody":                      "the network is the client",
	"tls/HandshakeTCP":                    "the network is the client",
	"tls/HandshakeUnix":                   "the network is the client",
	"nettest/tcp":                         "the network is the client",
	"nettest/unix":                        "the network is the client",
	"errors/UnknownNetworkListenPacket":   "packets",
	"errors/ListenPacketBadAddress":       "packets",
	"errors/PacketWriteToNowhereUnixgram": "packets",
	"close/UnblocksReadFromUDP":           "packets",
	"close/UnblocksReadFromUnixgram":      "packets",
}

func init() {
	for _, nw := range []string{"UDP", "Unixgram"} {
		for _, c := range []string{"PacketReadDeadline", "PacketReadFromAfterClose", "PacketWriteToAfterClose",
			"PacketCloseTwice", "PacketWriteToBadAddr", "ListenPacketInUse", "PacketWriteTooBig"} {
			listenOnlyNA["errors/"+c+nw] = "packets"
		}
	}
}

// platformSkips may be skipped for a platform fact (no IPv6 loopback, no
// abstract unix addresses), on any network.
var platformSkips = map[string]bool{"tcp/AddrsIPv6": true, "unix/AbstractAddrs": true}

// TestListenOnly runs the socket suite on a network that can listen but
// neither dial nor open packet sockets, and fails if a case that is not
// about dialing or packets is n/a (or one that is runs).
func TestListenOnly(t *testing.T) {
	res := conformance.TestNetworkResults(t, func() (conformance.Network, func() error, error) {
		return listenOnly{conformance.StdNetwork}, nil, nil
	})
	ran, na := 0, 0
	var wrong []string
	for _, r := range res {
		area, _, _ := strings.Cut(r.Name, "/")
		why, wantNA := listenOnlyNA[r.Name]
		if area == "udp" || area == "unixgram" {
			why, wantNA = "packets", true
		}
		switch {
		case r.NA != "":
			na++
			if _, declared := listenOnlyMissing[r.NA]; !declared {
				wrong = append(wrong, r.Name+": n/a for "+string(r.NA)+", which the network does not declare missing")
			} else if !wantNA {
				wrong = append(wrong, r.Name+": n/a ("+string(r.NA)+"), but it neither dials nor uses packets: it must run on the conns the network accepts")
			}
		case r.Skipped:
			if !platformSkips[r.Name] {
				wrong = append(wrong, r.Name+": skipped, and not for a missing capability")
			}
		default:
			ran++
			if wantNA {
				wrong = append(wrong, r.Name+": ran although it "+why+": update listenOnlyNA")
			}
		}
	}
	t.Logf("listen-only network: %d cases ran, %d n/a, %d skipped for a platform fact (%d in all)", ran, na, len(res)-ran-na, len(res))
	sort.Strings(wrong)
	for _, w := range wrong {
		t.Error(w)
	}
}
