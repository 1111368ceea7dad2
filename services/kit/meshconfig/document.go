// Package meshconfig is Switchyard's config document model: operators' YAML
// documents (`kind`, `name`, `spec`) decoded into the typed messages of
// proto/switchyard/config/v1 and validated, with errors that name the field
// path and the reason. The registry calls Validate on every apply and meshctl
// calls Parse before sending, so a document is judged the same way
// everywhere; the control plane calls Decode on what the registry stores.
//
// Decoding is YAML → JSON → protojson with unknown fields refused. Durations
// may be written as Go durations ("250ms", "1m30s").
package meshconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	configv1 "github.com/switchyard-mesh/switchyard/proto/switchyard/config/v1"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Kind names, stable: they are stored in the registry and written by operators.
const (
	KindServiceDefaults     = "ServiceDefaults"
	KindHTTPRoute           = "HTTPRoute"
	KindAuthorizationPolicy = "AuthorizationPolicy"
	KindRateLimitPolicy     = "RateLimitPolicy"
)

// kind describes one document kind: how to make an empty spec and how to
// check a decoded one.
type kind struct {
	newSpec  func() proto.Message
	validate func(f *fieldErrors, name string, spec proto.Message)
}

// kinds is the one table of supported kinds.
var kinds = map[string]kind{
	KindServiceDefaults: {
		newSpec: func() proto.Message { return &configv1.ServiceDefaults{} },
		validate: func(f *fieldErrors, _ string, m proto.Message) {
			validateServiceDefaults(f, m.(*configv1.ServiceDefaults))
		},
	},
	KindHTTPRoute: {
		newSpec:  func() proto.Message { return &configv1.HTTPRoute{} },
		validate: func(f *fieldErrors, _ string, m proto.Message) { validateHTTPRoute(f, m.(*configv1.HTTPRoute)) },
	},
	KindAuthorizationPolicy: {
		newSpec: func() proto.Message { return &configv1.AuthorizationPolicy{} },
		validate: func(f *fieldErrors, _ string, m proto.Message) {
			validateAuthorizationPolicy(f, m.(*configv1.AuthorizationPolicy))
		},
	},
	KindRateLimitPolicy: {
		newSpec: func() proto.Message { return &configv1.RateLimitPolicy{} },
		validate: func(f *fieldErrors, _ string, m proto.Message) {
			validateRateLimitPolicy(f, m.(*configv1.RateLimitPolicy))
		},
	},
}

// Kinds lists the supported kinds, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Document is one validated config document.
type Document struct {
	Kind string
	Name string
	// Spec is the typed message: *configv1.ServiceDefaults, *configv1.HTTPRoute,
	// *configv1.AuthorizationPolicy or *configv1.RateLimitPolicy.
	Spec proto.Message
}

// Key is "Kind/name", unique per document.
func (d Document) Key() string { return d.Kind + "/" + d.Name }

// SpecJSON is the spec in canonical JSON (snake_case names, sorted keys, no
// defaults), stable enough to compare byte for byte.
func (d Document) SpecJSON() ([]byte, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(d.Spec)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", d.Key(), err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("canonicalise %s: %w", d.Key(), err)
	}
	return json.Marshal(v)
}

// YAML renders the whole document (kind, name, spec) as YAML.
func (d Document) YAML() ([]byte, error) {
	spec, err := d.SpecJSON()
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(spec, &v); err != nil {
		return nil, fmt.Errorf("render %s: %w", d.Key(), err)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(docYAML{Kind: d.Kind, Name: d.Name, Spec: v}); err != nil {
		return nil, fmt.Errorf("render %s: %w", d.Key(), err)
	}
	return b.Bytes(), enc.Close()
}

type docYAML struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
	Spec any    `yaml:"spec"`
}

// Validate checks one document as the registry receives it. body is the
// spec as JSON or YAML, or the whole document (an object with kind, name
// and spec), in which case its kind and name must agree with the arguments.
// The error wraps one *FieldError per problem (errors.Join).
func Validate(kind, name string, body []byte) error {
	_, err := Decode(kind, name, body)
	return err
}

// Decode is Validate returning the typed document.
func Decode(kindName, name string, body []byte) (Document, error) {
	var v any
	if err := yaml.Unmarshal(body, &v); err != nil {
		return Document{}, &FieldError{Kind: kindName, Name: name, Field: "spec", Reason: fmt.Sprintf("not YAML or JSON: %v", err)}
	}
	if m, ok := v.(map[string]any); ok {
		if _, hasSpec := m["spec"]; hasSpec {
			if _, hasKind := m["kind"]; hasKind {
				d, err := fromGeneric(m)
				if err != nil {
					return Document{}, err
				}
				if d.Kind != kindName || d.Name != name {
					return Document{}, &FieldError{Kind: kindName, Name: name, Reason: fmt.Sprintf("body is document %s/%s, not %s/%s", d.Kind, d.Name, kindName, name)}
				}
				return d, nil
			}
		}
	}
	return decodeSpec(kindName, name, v)
}

// Parse reads a stream of YAML documents separated by "---", as written for
// `meshctl apply -f`. Every document is validated, then the set
// (CheckSet); if any is invalid, Parse returns no documents and an error
// naming each problem with the document's position and line.
func Parse(r io.Reader) ([]Document, error) {
	dec := yaml.NewDecoder(r)
	var (
		docs []Document
		errs []error
		seen = map[string]int{}
	)
	for i := 1; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			break
		}
		line := node.Line
		if len(node.Content) > 0 {
			line = node.Content[0].Line
		}
		var v any
		if err := node.Decode(&v); err != nil {
			errs = append(errs, fmt.Errorf("document %d (line %d): %w", i, line, err))
			continue
		}
		if v == nil {
			continue // an empty document, e.g. a trailing "---"
		}
		d, err := fromGeneric(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d (line %d): %w", i, line, err))
			continue
		}
		if prev, dup := seen[d.Key()]; dup {
			errs = append(errs, fmt.Errorf("document %d (line %d): %s repeats document %d", i, line, d.Key(), prev))
			continue
		}
		seen[d.Key()] = i
		docs = append(docs, d)
	}
	if len(errs) == 0 {
		if err := CheckSet(docs); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return docs, nil
}

// fromGeneric decodes a whole document from its generic YAML form.
func fromGeneric(v any) (Document, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Document{}, &FieldError{Reason: "document must be a mapping with kind, name and spec"}
	}
	var (
		k, _    = m["kind"].(string)
		name, _ = m["name"].(string)
	)
	f := &fieldErrors{kind: k, name: name}
	for key := range m {
		if key != "kind" && key != "name" && key != "spec" {
			f.add(key, "unknown field (a document has kind, name and spec)")
		}
	}
	if k == "" {
		f.add("kind", "required, one of %v", Kinds())
	}
	if _, ok := m["spec"]; !ok {
		f.add("spec", "required")
	}
	if len(f.errs) > 0 {
		return Document{}, errors.Join(f.errs...)
	}
	return decodeSpec(k, name, m["spec"])
}

// decodeSpec normalises the generic spec, decodes it with protojson and runs
// the kind's semantic checks.
func decodeSpec(kindName, name string, spec any) (Document, error) {
	f := &fieldErrors{kind: kindName, name: name}
	kd, ok := kinds[kindName]
	if !ok {
		f.add("kind", "unknown kind, want one of %v", Kinds())
		return Document{}, errors.Join(f.errs...)
	}
	validateName(f, "name", name)
	if spec == nil {
		spec = map[string]any{}
	}
	msg := kd.newSpec()
	norm := normalize(f, "spec", spec, msg.ProtoReflect().Descriptor())
	if len(f.errs) > 0 {
		return Document{}, errors.Join(f.errs...)
	}
	raw, err := json.Marshal(norm)
	if err != nil {
		f.add("spec", "encode: %v", err)
		return Document{}, errors.Join(f.errs...)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, msg); err != nil {
		f.add("spec", "%v", err)
		return Document{}, errors.Join(f.errs...)
	}
	kd.validate(f, name, msg)
	if len(f.errs) > 0 {
		return Document{}, errors.Join(f.errs...)
	}
	return Document{Kind: kindName, Name: name, Spec: msg}, nil
}
