package lb

import (
	"hash/fnv"
	"net"
	"net/http"
)

// HashPolicy says which part of a request keys a ring hash or maglev pick.
// The first policy that yields a value wins, as in Envoy's hash_policy list.
type HashPolicy struct {
	Header   string // request header name
	Cookie   string // cookie name
	SourceIP bool   // the downstream address
}

// Key hashes r by the first policy that matches; ok is false when none did
// and the picker should fall back to a random key.
func Key(policies []HashPolicy, r *http.Request) (uint64, bool) {
	for _, p := range policies {
		switch {
		case p.Header != "":
			if v := r.Header.Values(p.Header); len(v) > 0 {
				return HashString(v[0]), true
			}
		case p.Cookie != "":
			if c, err := r.Cookie(p.Cookie); err == nil {
				return HashString(c.Value), true
			}
		case p.SourceIP:
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				host = r.RemoteAddr
			}
			if host != "" {
				return HashString(host), true
			}
		}
	}
	return 0, false
}

// HashString is a 64-bit FNV-1a hash finished with a SplitMix64 mix so that
// short, similar keys spread over the whole range.
func HashString(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return mix(h.Sum64())
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
