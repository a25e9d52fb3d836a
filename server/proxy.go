package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParsePrefixes parses a comma-separated list of CIDRs or single
// addresses, such as "10.0.0.0/8,192.0.2.1".
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q: want a CIDR such as 10.0.0.0/8 or an address such as 192.0.2.1", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// forwarded makes requests from trusted proxies carry the client's
// address (X-Forwarded-For, read from the right, skipping trusted hops)
// and scheme (X-Forwarded-Proto). From anyone else both headers are
// dropped, so nothing downstream can be fooled by them.
func forwarded(trusted []netip.Prefix, next http.Handler) http.Handler {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		xff, proto := r.Header.Values("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto")
		if len(xff) == 0 && proto == "" {
			next.ServeHTTP(w, r)
			return
		}
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("X-Forwarded-For")
		r2.Header.Del("X-Forwarded-Proto")
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err == nil && isTrusted(peer.Addr()) {
			client := peer.Addr()
			hops := strings.Split(strings.Join(xff, ","), ",")
			for i := len(hops) - 1; i >= 0; i-- {
				a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
				if err != nil {
					break
				}
				client = a.Unmap()
				if !isTrusted(client) {
					break
				}
			}
			r2.RemoteAddr = netip.AddrPortFrom(client, 0).String()
			if proto == "http" || proto == "https" {
				u := *r.URL
				u.Scheme = proto
				r2.URL = &u
			}
		}
		next.ServeHTTP(w, &r2)
	})
}
