package scheduler

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/evhub/evhub/internal/nbsock"
)

// netKind classifies a network name the way package net does.
type netKind int

const (
	kindUnknown netKind = iota
	kindTCP
	kindUDP
	kindUnix
)

func classify(network string) (netKind, int) {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return kindTCP, unix.SOCK_STREAM
	case "udp", "udp4", "udp6":
		return kindUDP, unix.SOCK_DGRAM
	case "unix":
		return kindUnix, unix.SOCK_STREAM
	case "unixgram":
		return kindUnix, unix.SOCK_DGRAM
	case "unixpacket":
		return kindUnix, unix.SOCK_SEQPACKET
	}
	return kindUnknown, 0
}

var (
	ipv6Once      sync.Once
	supportsIPv6  bool
	supportsV4Map bool
)

// probeIPv6 finds out, once, whether this host can bind IPv6 sockets and
// IPv4-mapped addresses (for dual-stack wildcard listeners), as net does.
func probeIPv6() {
	ipv6Once.Do(func() {
		try := func(v6only int, addr [16]byte) bool {
			s, err := nbsock.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
			if err != nil {
				return false
			}
			defer unix.Close(s)
			if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
				return false
			}
			return unix.Bind(s, &unix.SockaddrInet6{Addr: addr}) == nil
		}
		supportsIPv6 = try(1, [16]byte{15: 1})
		supportsV4Map = try(0, [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1})
	})
}

// family picks the address family for an IP socket and whether it is
// IPv6-only, following net's favoriteAddrFamily: a wildcard "tcp"/"udp"
// listener is dual-stack where the host supports it.
func family(network string, ip net.IP, listen bool) (int, bool) {
	switch network[len(network)-1] {
	case '4':
		return unix.AF_INET, false
	case '6':
		return unix.AF_INET6, true
	}
	probeIPv6()
	if listen && (ip == nil || ip.IsUnspecified()) {
		if supportsIPv6 && supportsV4Map {
			return unix.AF_INET6, false // dual-stack wildcard
		}
		return unix.AF_INET, false
	}
	if ip == nil || ip.To4() != nil {
		return unix.AF_INET, false
	}
	return unix.AF_INET6, false
}

func ipSockaddr(fam int, ip net.IP, port int, zone string) (unix.Sockaddr, error) {
	switch fam {
	case unix.AF_INET:
		if len(ip) == 0 {
			ip = net.IPv4zero
		}
		ip4 := ip.To4()
		if ip4 == nil {
			return nil, &net.AddrError{Err: "non-IPv4 address", Addr: ip.String()}
		}
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return sa, nil
	default:
		if len(ip) == 0 || ip.Equal(net.IPv4zero) {
			ip = net.IPv6zero
		}
		ip6 := ip.To16()
		if ip6 == nil {
			return nil, &net.AddrError{Err: "non-IPv6 address", Addr: ip.String()}
		}
		sa := &unix.SockaddrInet6{Port: port, ZoneId: zoneIndex(zone)}
		copy(sa.Addr[:], ip6)
		return sa, nil
	}
}

func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

func zoneName(idx uint32) string {
	if idx == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		return ifi.Name
	}
	return ""
}

// sockaddrToAddr converts a kernel address to the net.Addr type net uses
// for the network kind.
func sockaddrToAddr(kind netKind, sotype int, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		ip := net.IP(netip.AddrFrom4(sa.Addr).AsSlice())
		if kind == kindUDP {
			return &net.UDPAddr{IP: ip, Port: sa.Port}
		}
		return &net.TCPAddr{IP: ip, Port: sa.Port}
	case *unix.SockaddrInet6:
		ip := net.IP(netip.AddrFrom16(sa.Addr).AsSlice())
		zone := zoneName(sa.ZoneId)
		if kind == kindUDP {
			return &net.UDPAddr{IP: ip, Port: sa.Port, Zone: zone}
		}
		return &net.TCPAddr{IP: ip, Port: sa.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: unixNet(sotype)}
	}
	return nil
}

func unixNet(sotype int) string {
	switch sotype {
	case unix.SOCK_DGRAM:
		return "unixgram"
	case unix.SOCK_SEQPACKET:
		return "unixpacket"
	}
	return "unix"
}

// addrSockaddr converts a net.Addr given by the caller (WriteTo).
func addrSockaddr(fam int, a net.Addr) (unix.Sockaddr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		if a == nil {
			return nil, false
		}
		sa, err := ipSockaddr(fam, a.IP, a.Port, a.Zone)
		return sa, err == nil
	case *net.TCPAddr:
		if a == nil {
			return nil, false
		}
		sa, err := ipSockaddr(fam, a.IP, a.Port, a.Zone)
		return sa, err == nil
	case *net.UnixAddr:
		if a == nil {
			return nil, false
		}
		return &unix.SockaddrUnix{Name: a.Name}, true
	}
	return nil, false
}

// errRawIP is returned for raw IP networks ("ip4:icmp"), which hub sockets
// do not offer.
var errRawIP = fmt.Errorf("raw IP sockets are not available on a hub: %w", errors.ErrUnsupported)

// badNetwork builds net's error for a network a call does not take: an
// unknown name is an UnknownNetworkError; a known network of the wrong
// kind (Listen("udp", ...)) is resolved first and then refused with
// "unexpected address type", exactly as net does.
func badNetwork(op, network, address string) error {
	addr, err := stdResolve(network, address)
	if err != nil {
		return &net.OpError{Op: op, Net: network, Err: err}
	}
	return &net.OpError{Op: op, Net: network, Addr: addr, Err: &net.AddrError{Err: "unexpected address type", Addr: address}}
}

func stdResolve(network, address string) (net.Addr, error) {
	switch kind, _ := classify(network); kind {
	case kindTCP:
		return net.ResolveTCPAddr(network, address)
	case kindUDP:
		return net.ResolveUDPAddr(network, address)
	case kindUnix:
		return net.ResolveUnixAddr(network, address)
	}
	if afnet, proto, ok := strings.Cut(network, ":"); ok && validProto(proto) {
		switch afnet {
		case "ip", "ip4", "ip6":
			return net.ResolveIPAddr(afnet, address)
		}
	}
	return nil, net.UnknownNetworkError(network)
}

func isRawIP(network string) bool {
	afnet, proto, ok := strings.Cut(network, ":")
	return ok && validProto(proto) && (afnet == "ip" || afnet == "ip4" || afnet == "ip6")
}

// validProto accepts an IP protocol number or one of the names net knows
// without /etc/protocols.
func validProto(p string) bool {
	if n, err := strconv.Atoi(p); err == nil {
		return n >= 0 && n < 256
	}
	switch strings.ToLower(p) {
	case "icmp", "igmp", "tcp", "udp", "ipv6-icmp":
		return true
	}
	return false
}
