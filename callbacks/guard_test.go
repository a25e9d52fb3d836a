package callbacks

import (
	"net/netip"
	"testing"
)

// TestPublic classifies addresses without dialling any.
func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"::1", false},
		{"10.0.0.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"ff02::1", false},
		{"ff05::2", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.1.2.3", false},
		{"::ffff:192.168.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:100.64.0.1", false},
		{"::ffff:0.0.0.0", false},
		{"0.1.2.3", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"64:ff9b::7f00:1", false},  // NAT64 of 127.0.0.1
		{"64:ff9b::a00:1", false},   // NAT64 of 10.0.0.1
		{"2002:c0a8:101::1", false}, // 6to4 of 192.168.1.1
		{"2002:7f00:1::", false},    // 6to4 of 127.0.0.1

		// The rest of the IANA special-purpose registries.
		{"::1.2.3.4", false},           // IPv4-compatible, deprecated
		{"::8.8.8.8", false},           // IPv4-compatible of a public address
		{"::ffff:0:127.0.0.1", false},  // SIIT IPv4-translated
		{"::ffff:0:8.8.8.8", false},    // SIIT IPv4-translated
		{"64:ff9b:1::a00:1", false},    // local-use NAT64
		{"64:ff9b:1::808:808", false},  // local-use NAT64, public IPv4 inside
		{"2001::1", false},             // Teredo
		{"2001:0:4136:e378::1", false}, // Teredo
		{"2001:2::1", false},           // benchmarking
		{"2001:10::1", false},          // ORCHID, deprecated
		{"2001:db8::1", false},         // documentation
		{"3fff::1", false},             // documentation (RFC 9637)
		{"fec0::1", false},             // site-local, deprecated
		{"feff::1", false},             // site-local, deprecated
		{"100::1", false},              // discard-only
		{"100::ffff:1", false},         // discard-only
		{"5f00::1", false},             // SRv6 SIDs
		{"4000::1", false},             // outside global unicast
		{"e000::1", false},             // outside global unicast
		{"192.0.0.1", false},           // IETF protocol assignments
		{"192.0.0.8", false},           // IPv4 dummy address
		{"192.0.0.170", false},         // NAT64 discovery
		{"192.0.2.1", false},           // TEST-NET-1
		{"198.51.100.7", false},        // TEST-NET-2
		{"203.0.113.9", false},         // TEST-NET-3
		{"192.88.99.1", false},         // 6to4 relay anycast, deprecated
		{"::ffff:192.0.0.1", false},    // mapped IETF assignment
		{"64:ff9b::c000:201", false},   // NAT64 of 192.0.2.1
		{"2002:c000:0201::1", false},   // 6to4 of 192.0.2.1
		{"fe80::1%lo", false},          // zoned link-local

		{"8.8.8.8", true},
		{"192.0.1.1", true},
		{"192.31.196.1", true}, // AS112-v4, globally reachable
		{"192.52.193.1", true}, // AMT
		{"192.175.48.1", true}, // AS112 direct delegation
		{"198.17.255.255", true},
		{"2001:1::1", true},       // PCP anycast, globally reachable
		{"2001:3::1", true},       // AMT
		{"2001:4:112::1", true},   // AS112-v6
		{"2001:20::1", true},      // ORCHIDv2
		{"2001:200::1", true},     // just past 2001::/23
		{"2620:4f:8000::1", true}, // AS112 direct delegation
		{"2a00:1450:4001::1", true},
		{"1.1.1.1", true},
		{"172.32.0.1", true},
		{"100.128.0.1", true},
		{"192.169.0.1", true},
		{"2001:4860:4860::8888", true},
		{"2001:4860::8888", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8
		{"198.20.0.1", true},
	} {
		if got := public(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("public(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if public(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

// TestGuardHook checks the dialer hook on the address strings it is given.
func TestGuardHook(t *testing.T) {
	for _, tc := range []struct {
		address string
		refused bool
	}{
		{"127.0.0.1:80", true},
		{"[::ffff:127.0.0.1]:443", true},
		{"[fe80::1%eth0]:80", true},
		{"not an address", true},
		{"8.8.8.8:443", false},
		{"[2001:4860::8888]:443", false},
	} {
		if err := guard("tcp", tc.address, nil); (err != nil) != tc.refused {
			t.Errorf("guard(%s) = %v, want refused %v", tc.address, err, tc.refused)
		}
	}
}
