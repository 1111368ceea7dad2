package limits

import (
	"sort"
	"strings"
)

// Config is a parsed, validated set of domains. It is immutable and safe
// for concurrent use.
type Config struct {
	domains map[string]*node
}

// node is one configured descriptor: children by exact key=value, by value
// prefix (a value ending in "*"), and by key alone (any value).
type node struct {
	key       string
	value     string
	hasValue  bool
	path      string
	limits    []Limit
	unlimited bool
	shadow    bool

	exact    map[string]*node // key + "\x00" + value
	prefixes []*node          // value ends in "*", longest first
	anyValue map[string]*node // key
}

func (n *node) add(c *node) {
	switch {
	case !c.hasValue:
		if n.anyValue == nil {
			n.anyValue = map[string]*node{}
		}
		n.anyValue[c.key] = c
	case strings.HasSuffix(c.value, "*"):
		n.prefixes = append(n.prefixes, c)
		sort.SliceStable(n.prefixes, func(i, j int) bool { return len(n.prefixes[i].value) > len(n.prefixes[j].value) })
	default:
		if n.exact == nil {
			n.exact = map[string]*node{}
		}
		n.exact[c.key+"\x00"+c.value] = c
	}
}

func (n *node) child(e Entry) *node {
	if c, ok := n.exact[e.Key+"\x00"+e.Value]; ok {
		return c
	}
	for _, c := range n.prefixes {
		if c.key == e.Key && strings.HasPrefix(e.Value, c.value[:len(c.value)-1]) {
			return c
		}
	}
	return n.anyValue[e.Key]
}

// Domains lists the configured domain names in order.
func (c *Config) Domains() []string {
	out := make([]string, 0, len(c.domains))
	for d := range c.domains {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// HasDomain reports whether domain is configured.
func (c *Config) HasDomain(domain string) bool {
	_, ok := c.domains[domain]
	return ok
}

// Match finds the rule for one request descriptor. As in envoyproxy/ratelimit
// each entry descends one level (an exact key=value first, then a value
// prefix, then the key with any value) and a rule applies only when the node
// reached by the last entry has a rate limit or is unlimited. It returns
// false when nothing applies.
func (c *Config) Match(domain string, entries []Entry) (Rule, bool) {
	n := c.domains[domain]
	if n == nil || len(entries) == 0 {
		return Rule{}, false
	}
	for _, e := range entries {
		if n = n.child(e); n == nil {
			return Rule{}, false
		}
	}
	if len(n.limits) == 0 && !n.unlimited {
		return Rule{}, false
	}
	return Rule{Domain: domain, Path: n.path, Limits: n.limits, Unlimited: n.unlimited, Shadow: n.shadow}, true
}

// Walk calls fn for every configured rule of every domain, in a stable
// order; it is used to describe the configuration.
func (c *Config) Walk(fn func(Rule)) {
	for _, d := range c.Domains() {
		walk(d, c.domains[d], fn)
	}
}

func walk(domain string, n *node, fn func(Rule)) {
	if len(n.limits) > 0 || n.unlimited {
		fn(Rule{Domain: domain, Path: n.path, Limits: n.limits, Unlimited: n.unlimited, Shadow: n.shadow})
	}
	var kids []*node
	for _, c := range n.exact {
		kids = append(kids, c)
	}
	kids = append(kids, n.prefixes...)
	for _, c := range n.anyValue {
		kids = append(kids, c)
	}
	sort.Slice(kids, func(i, j int) bool { return kids[i].path < kids[j].path })
	for _, c := range kids {
		walk(domain, c, fn)
	}
}
