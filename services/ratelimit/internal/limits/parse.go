package limits

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseError names the place of a configuration mistake: the file, the line,
// the domain and the path of the field inside it.
type ParseError struct {
	File   string
	Line   int
	Domain string
	Path   string
	Reason string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Domain != "" {
		fmt.Fprintf(&b, "domain %q ", e.Domain)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// LoadPath reads the configuration from a file, or from every *.yaml and
// *.yml file of a directory (in name order). Each file holds one or more
// YAML documents, each document one domain.
func LoadPath(path string) (*Config, error) {
	b := NewBuilder()
	if err := b.AddPath(path); err != nil {
		return nil, err
	}
	return b.Config(), nil
}

// Files lists the files LoadPath reads for path.
func Files(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read rate limit config: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read rate limit config dir: %w", err)
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// AddPath adds the domains of a file or directory, as LoadPath reads them.
func (b *Builder) AddPath(path string) error {
	files, err := Files(path)
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read rate limit config: %w", err)
		}
		if err := b.Add(f, data); err != nil {
			return err
		}
	}
	return nil
}

// Parse reads the configuration from data; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	b := NewBuilder()
	if err := b.Add(name, data); err != nil {
		return nil, err
	}
	return b.Config(), nil
}

// Builder collects domains from several sources into one Config and refuses
// a domain defined twice.
type Builder struct {
	domains map[string]*node
	origin  map[string]string
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{domains: map[string]*node{}, origin: map[string]string{}}
}

// Add parses every YAML document in data as one domain.
func (b *Builder) Add(name string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &ParseError{File: name, Reason: err.Error()}
		}
		if len(doc.Content) == 0 {
			continue
		}
		p := &parser{file: name}
		domain, root, err := p.parseDomain(doc.Content[0])
		if err != nil {
			return err
		}
		if prev, dup := b.origin[domain]; dup {
			return p.errAt(doc.Content[0], "domain", "domain %q is already defined in %s", domain, prev)
		}
		b.domains[domain] = root
		b.origin[domain] = fmt.Sprintf("%s:%d", name, doc.Content[0].Line)
	}
}

// AddDomain adds one domain whose document has already been decoded into a
// YAML node, e.g. the spec of a RateLimitPolicy; name is used in errors.
func (b *Builder) AddDomain(name string, doc *yaml.Node) error {
	p := &parser{file: name}
	domain, root, err := p.parseDomain(doc)
	if err != nil {
		return err
	}
	if prev, dup := b.origin[domain]; dup {
		return p.errAt(doc, "domain", "domain %q is already defined in %s", domain, prev)
	}
	b.domains[domain] = root
	b.origin[domain] = name
	return nil
}

// Config returns what has been added so far.
func (b *Builder) Config() *Config {
	domains := make(map[string]*node, len(b.domains))
	for k, v := range b.domains {
		domains[k] = v
	}
	return &Config{domains: domains}
}

type parser struct {
	file   string
	domain string
}

func (p *parser) errAt(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{File: p.file, Line: line, Domain: p.domain, Path: path, Reason: fmt.Sprintf(format, args...)}
}

// fields checks that n is a mapping with only allowed, non-repeated keys and
// returns its values by key.
func (p *parser) fields(n *yaml.Node, path string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, path, "must be a mapping")
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := join(path, k.Value)
		if !contains(allowed, k.Value) {
			return nil, p.errAt(k, field, "unknown field (allowed: %s)", strings.Join(allowed, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, p.errAt(k, field, "duplicate key %q", k.Value)
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		out[k.Value] = v
	}
	return out, nil
}

func (p *parser) str(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errAt(n, path, "must be a string")
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, p.errAt(n, path, "must be true or false, got %q", n.Value)
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", nil
}

func (p *parser) count(n *yaml.Node, path string) (uint32, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, p.errAt(n, path, "must be a whole number, got %q", n.Value)
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil {
		return 0, p.errAt(n, path, "must be a whole number, got %q", n.Value)
	}
	if v < 0 {
		return 0, p.errAt(n, path, "must not be negative, got %d", v)
	}
	if v > math.MaxUint32 {
		return 0, p.errAt(n, path, "must be at most %d, got %d", uint32(math.MaxUint32), v)
	}
	return uint32(v), nil
}

func (p *parser) parseDomain(n *yaml.Node) (string, *node, error) {
	f, err := p.fields(n, "", "domain", "descriptors")
	if err != nil {
		return "", nil, err
	}
	dn, ok := f["domain"]
	if !ok {
		return "", nil, p.errAt(n, "domain", "is required")
	}
	name, err := p.str(dn, "domain")
	if err != nil {
		return "", nil, err
	}
	if name == "" {
		return "", nil, p.errAt(dn, "domain", "must not be empty")
	}
	p.domain = name
	root := &node{}
	if d, ok := f["descriptors"]; ok {
		if err := p.descriptors(d, "descriptors", root, ""); err != nil {
			return "", nil, err
		}
	}
	return name, root, nil
}

func (p *parser) descriptors(n *yaml.Node, path string, parent *node, parentPath string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errAt(n, path, "must be a list")
	}
	seen := map[string]string{}
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", path, i)
		child, err := p.descriptor(item, at, parentPath)
		if err != nil {
			return err
		}
		id := child.key + "=" + child.value
		if !child.hasValue {
			id = child.key
		}
		if prev, dup := seen[id]; dup {
			return p.errAt(item, at, "duplicate descriptor %s (also at %s)", id, prev)
		}
		seen[id] = at
		parent.add(child)
	}
	return nil
}

func (p *parser) descriptor(n *yaml.Node, path, parentPath string) (*node, error) {
	f, err := p.fields(n, path, "key", "value", "rate_limit", "rate_limits", "unlimited", "shadow_mode", "descriptors")
	if err != nil {
		return nil, err
	}
	out := &node{}
	kn, ok := f["key"]
	if !ok {
		return nil, p.errAt(n, join(path, "key"), "is required")
	}
	if out.key, err = p.str(kn, join(path, "key")); err != nil {
		return nil, err
	}
	if out.key == "" {
		return nil, p.errAt(kn, join(path, "key"), "must not be empty")
	}
	if vn, ok := f["value"]; ok {
		if out.value, err = p.str(vn, join(path, "value")); err != nil {
			return nil, err
		}
		out.hasValue = true
	}
	seg := out.key
	if out.hasValue {
		seg += "=" + out.value
	}
	out.path = join(parentPath, seg)
	if un, ok := f["unlimited"]; ok {
		if out.unlimited, err = p.boolean(un, join(path, "unlimited")); err != nil {
			return nil, err
		}
	}
	if sn, ok := f["shadow_mode"]; ok {
		if out.shadow, err = p.boolean(sn, join(path, "shadow_mode")); err != nil {
			return nil, err
		}
	}
	if rn, ok := f["rate_limit"]; ok {
		l, err := p.limit(rn, join(path, "rate_limit"))
		if err != nil {
			return nil, err
		}
		out.limits = append(out.limits, l)
	}
	if rn, ok := f["rate_limits"]; ok {
		lpath := join(path, "rate_limits")
		if _, both := f["rate_limit"]; both {
			return nil, p.errAt(rn, lpath, "use either rate_limit or rate_limits, not both")
		}
		if rn.Kind != yaml.SequenceNode || len(rn.Content) == 0 {
			return nil, p.errAt(rn, lpath, "must be a non-empty list")
		}
		for i, item := range rn.Content {
			l, err := p.limit(item, fmt.Sprintf("%s[%d]", lpath, i))
			if err != nil {
				return nil, err
			}
			out.limits = append(out.limits, l)
		}
	}
	if out.unlimited && len(out.limits) > 0 {
		return nil, p.errAt(f["unlimited"], join(path, "unlimited"), "an unlimited descriptor cannot also have rate_limit")
	}
	if dn, ok := f["descriptors"]; ok {
		if err := p.descriptors(dn, join(path, "descriptors"), out, out.path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *parser) limit(n *yaml.Node, path string) (Limit, error) {
	f, err := p.fields(n, path, "unit", "requests_per_unit", "name", "algorithm", "burst")
	if err != nil {
		return Limit{}, err
	}
	var l Limit
	un, ok := f["unit"]
	if !ok {
		return l, p.errAt(n, join(path, "unit"), "is required")
	}
	s, err := p.str(un, join(path, "unit"))
	if err != nil {
		return l, err
	}
	if l.Unit, err = ParseUnit(s); err != nil {
		return l, p.errAt(un, join(path, "unit"), "%v", err)
	}
	rn, ok := f["requests_per_unit"]
	if !ok {
		return l, p.errAt(n, join(path, "requests_per_unit"), "is required")
	}
	if l.RequestsPerUnit, err = p.count(rn, join(path, "requests_per_unit")); err != nil {
		return l, err
	}
	if nn, ok := f["name"]; ok {
		if l.Name, err = p.str(nn, join(path, "name")); err != nil {
			return l, err
		}
	}
	if an, ok := f["algorithm"]; ok {
		s, err := p.str(an, join(path, "algorithm"))
		if err != nil {
			return l, err
		}
		if l.Algorithm, err = ParseAlgorithm(s); err != nil {
			return l, p.errAt(an, join(path, "algorithm"), "%v", err)
		}
	}
	l.Burst = l.RequestsPerUnit
	if bn, ok := f["burst"]; ok {
		if l.Algorithm != GCRA {
			return l, p.errAt(bn, join(path, "burst"), "only applies to algorithm gcra")
		}
		if l.Burst, err = p.count(bn, join(path, "burst")); err != nil {
			return l, err
		}
		if l.Burst == 0 && l.RequestsPerUnit > 0 {
			return l, p.errAt(bn, join(path, "burst"), "must be at least 1")
		}
	}
	return l, nil
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
