package callbacks

import (
	"errors"
	"net/netip"
	"syscall"
)

// errBlocked is the dialer's refusal of a non-public address; a delivery
// that meets it is blocked.
var errBlocked = errors.New("callbacks: refused to connect to a non-public address")

// nonPublic are the IPv4 ranges that netip has no predicate for: "this
// network" (0.0.0.0/8), carrier-grade NAT (RFC 6598), benchmarking
// (RFC 2544) and the reserved 240.0.0.0/4, broadcast included.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// Prefixes of IPv6 forms that carry an IPv4 address: NAT64 (RFC 6052),
// whose last 4 bytes are it, and 6to4 (RFC 3056), whose bytes 2 to 5 are.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

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
// private (RFC 1918, IPv6 ULA fc00::/7), link-local, CGNAT, unspecified,
// multicast or reserved, in IPv4 or IPv6 form, nor an IPv6 address that
// carries such an IPv4 address (IPv4-mapped, NAT64, 6to4).
func public(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if b := ip.As16(); ip.Is6() && (nat64.Contains(ip) || sixTo4.Contains(ip)) {
		v4 := [4]byte(b[12:16])
		if sixTo4.Contains(ip) {
			v4 = [4]byte(b[2:6])
		}
		return public(netip.AddrFrom4(v4))
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
