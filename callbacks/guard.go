package callbacks

import (
	"errors"
	"net/netip"
	"syscall"
)

// errBlocked is the dialer's refusal of a non-public address; a delivery
// that meets it is blocked.
var errBlocked = errors.New("callbacks: refused to connect to a non-public address")

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), for
// which netip has no predicate.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// guard is the dialer's Control hook. It runs on the very address about to
// be connected to, after name resolution, so a name that resolves to a
// public address when checked and to a private one when used (DNS
// rebinding) cannot slip past it.
func guard(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !public(ap.Addr()) {
		return errBlocked
	}
	return nil
}

// public reports whether a callback may connect to ip: not loopback,
// private (RFC 1918, IPv6 ULA fc00::/7), link-local, CGNAT, unspecified or
// multicast, in IPv4, IPv6, or IPv4-mapped IPv6 form.
func public(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	return ip.IsValid() &&
		!ip.IsLoopback() &&
		!ip.IsPrivate() &&
		!ip.IsLinkLocalUnicast() &&
		!ip.IsMulticast() &&
		!ip.IsUnspecified() &&
		!cgnat.Contains(ip)
}
