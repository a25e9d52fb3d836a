package callbacks

import (
	"errors"
	"net/netip"
	"syscall"
)

// errBlocked is the dialer's refusal of a non-public address; a delivery
// that meets it is blocked. Its text, all that last_error shows, names no
// address: a hostname's resolved addresses are not the merchant's to see.
var errBlocked = errors.New("blocked")

// The IANA special-purpose address registries (IPv4 and IPv6, as of
// 2025), every range whose "Globally Reachable" is False or N/A, plus
// multicast, IPv4's reserved 240.0.0.0/4, IPv6's deprecated site-local
// fec0::/10, and all IPv6 space outside global unicast 2000::/3 (which
// holds the deprecated IPv4-compatible ::a.b.c.d, SIIT's ::ffff:0:a.b.c.d
// and the discard prefix 100::/64).
var (
	nonGlobal4 = prefixes(
		"0.0.0.0/8",       // "this network" (RFC 791)
		"10.0.0.0/8",      // private (RFC 1918)
		"100.64.0.0/10",   // shared address space, CGNAT (RFC 6598)
		"127.0.0.0/8",     // loopback (RFC 1122)
		"169.254.0.0/16",  // link local (RFC 3927)
		"172.16.0.0/12",   // private (RFC 1918)
		"192.0.0.0/24",    // IETF protocol assignments (RFC 6890), DS-Lite, NAT64 discovery
		"192.0.2.0/24",    // documentation, TEST-NET-1 (RFC 5737)
		"192.88.99.0/24",  // deprecated 6to4 relay anycast (RFC 7526)
		"192.168.0.0/16",  // private (RFC 1918)
		"198.18.0.0/15",   // benchmarking (RFC 2544)
		"198.51.100.0/24", // documentation, TEST-NET-2 (RFC 5737)
		"203.0.113.0/24",  // documentation, TEST-NET-3 (RFC 5737)
		"224.0.0.0/4",     // multicast (RFC 5771)
		"240.0.0.0/4",     // reserved (RFC 1112), 255.255.255.255 included
	)
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nonGlobal6     = prefixes(
		"2001::/23",      // IETF protocol assignments (RFC 2928): Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID
		"2001:db8::/32",  // documentation (RFC 3849)
		"3fff::/20",      // documentation (RFC 9637)
		"64:ff9b:1::/48", // local-use IPv4/IPv6 translation (RFC 8215)
		"5f00::/16",      // SRv6 SIDs (RFC 9602)
		"fc00::/7",       // unique local (RFC 4193)
		"fe80::/10",      // link local (RFC 4291)
		"fec0::/10",      // site local, deprecated (RFC 3879)
		"ff00::/8",       // multicast (RFC 4291)
	)
	// Globally reachable exceptions inside 2001::/23.
	global6 = prefixes(
		"2001:1::1/128",   // PCP anycast (RFC 7723)
		"2001:1::2/128",   // TURN anycast (RFC 8155)
		"2001:1::3/128",   // DNS-SD SRP anycast (RFC 9665)
		"2001:3::/32",     // AMT (RFC 7450)
		"2001:4:112::/48", // AS112-v6 (RFC 7535)
		"2001:20::/28",    // ORCHIDv2 (RFC 7343)
		"2001:30::/28",    // drone remote ID (RFC 9374)
	)
)

// Prefixes of IPv6 forms that carry an IPv4 address, which decides: NAT64
// (RFC 6052), whose last 4 bytes are it, and 6to4 (RFC 3056), whose bytes
// 2 to 5 are.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

func within(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

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

// public reports whether a callback may connect to ip: an address the IANA
// special-purpose registries call globally reachable (see nonGlobal4,
// nonGlobal6), in IPv4 or IPv6 form; an IPv6 address that carries an IPv4
// one (IPv4-mapped, NAT64, 6to4) is judged by the IPv4 address.
func public(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if ip.Is4() {
		return !within(ip, nonGlobal4)
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return public(netip.AddrFrom4([4]byte(b[12:16])))
	case sixTo4.Contains(ip):
		return public(netip.AddrFrom4([4]byte(b[2:6])))
	case within(ip, global6):
		return true
	}
	return globalUnicast6.Contains(ip) && !within(ip, nonGlobal6)
}
