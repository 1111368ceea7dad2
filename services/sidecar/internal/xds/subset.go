package xds

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds/supported"
)

// Resources are decoded into the sidecar's own subset of the Envoy v3
// message types (proto/switchyard/xdssubset, written by subsetgen from its
// table of supported fields): Envoy's names and field numbers, without the
// fields this proxy does not implement. Such a field, when set, decodes as
// an unknown field, and an unknown field anywhere makes the resource
// invalid (NACK) with an error naming it — configuration is never silently
// ignored. Decoding into Envoy's full types instead built descriptors and
// coders for every message type reachable from the resources' files: 2.6 MB
// of live heap, more than half of the sidecar's. The ADS and RLS messages
// are in the subset too, so the sidecar links none of go-control-plane's
// generated code.
const subsetPrefix = supported.Prefix

const typeURLPrefix = "type.googleapis.com/"

// The resource types of ADS, by type URL.
const (
	ListenerType = typeURLPrefix + "envoy.config.listener.v3.Listener"
	RouteType    = typeURLPrefix + "envoy.config.route.v3.RouteConfiguration"
	ClusterType  = typeURLPrefix + "envoy.config.cluster.v3.Cluster"
	EndpointType = typeURLPrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// envoyName is the Envoy name of a subset descriptor.
func envoyName(d protoreflect.Descriptor) protoreflect.FullName {
	return protoreflect.FullName(strings.TrimPrefix(string(d.FullName()), subsetPrefix))
}

// typeURL is the type URL a control plane sends for the subset type of m.
func typeURL(m proto.Message) string {
	return typeURLPrefix + string(envoyName(m.ProtoReflect().Descriptor()))
}

// unpack decodes a into m, a subset type, when a holds the Envoy type m
// stands for.
func unpack(a *anypb.Any, m proto.Message) error {
	if want := typeURL(m); a.GetTypeUrl() != want {
		return fmt.Errorf("type %s, want %s", a.GetTypeUrl(), want)
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
	}
	return nil
}

// decodeResource decodes a resource into its subset type (the Validate
// functions check its fields).
func decodeResource(a *anypb.Any) (proto.Message, error) {
	m, err := newSubset(a.GetTypeUrl())
	if err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return nil, fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
	}
	return m, nil
}

// newSubset returns an empty subset message for an Envoy type URL.
func newSubset(url string) (proto.Message, error) {
	name := typeName(url)
	mt, err := protoregistry.GlobalTypes.FindMessageByName(subsetPrefix + name)
	if err != nil {
		return nil, fmt.Errorf("message type %s is not supported", name)
	}
	return mt.New().Interface(), nil
}

// checkFields walks m and returns an error naming the first field (as a
// path from m) that the proxy does not implement. Any fields are decoded
// into their subset types and checked too.
func checkFields(m proto.Message) error {
	return walk(m.ProtoReflect(), "")
}

// valueType says whether name is a well-known type, which fields may use
// wholesale (the generator admits only those in supported.ValueTypes).
func valueType(name protoreflect.FullName) bool {
	return strings.HasPrefix(string(name), "google.protobuf.") && name != "google.protobuf.Any"
}

func walk(m protoreflect.Message, path string) error {
	d := m.Descriptor()
	if valueType(d.FullName()) {
		return nil
	}
	if d.FullName() == "google.protobuf.Any" {
		a := m.Interface().(*anypb.Any)
		inner, err := newSubset(a.GetTypeUrl())
		if err == nil {
			err = proto.Unmarshal(a.GetValue(), inner)
		}
		if err != nil {
			return fmt.Errorf("field %s: %w", strings.TrimPrefix(path, "."), err)
		}
		return walk(inner.ProtoReflect(), path)
	}
	if u := m.GetUnknown(); len(u) > 0 {
		return fmt.Errorf("field %s is not supported by this proxy", strings.TrimPrefix(path+"."+unknownFieldName(d, u), "."))
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walk(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = walk(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()))
				return err == nil
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			err = walk(v.Message(), p)
		}
		return err == nil
	})
	return err
}

// unknownFieldName names the first unknown field of a subset message as
// Envoy's type of the same name does.
func unknownFieldName(d protoreflect.MessageDescriptor, unknown []byte) string {
	num, _, _ := protowire.ConsumeTag(unknown)
	if name, ok := omittedField(envoyName(d), num); ok {
		return name
	}
	return fmt.Sprintf("number %d (unknown to Envoy's %s)", num, envoyName(d))
}

// omittedField looks up Envoy's name of a field the subset leaves out in
// the generated table (one line per type: "<type> <number>=<name> …").
func omittedField(msg protoreflect.FullName, num protowire.Number) (string, bool) {
	table := xdssubset.OmittedFields
	i := strings.Index(table, "\n"+string(msg)+" ")
	if i < 0 {
		return "", false
	}
	line := table[i+1:]
	if end := strings.IndexByte(line, '\n'); end >= 0 {
		line = line[:end]
	}
	want := fmt.Sprintf("%d=", num)
	for _, f := range strings.Fields(line)[1:] {
		if name, ok := strings.CutPrefix(f, want); ok {
			return name, true
		}
	}
	return "", false
}

// ResourceJSON renders an accepted resource as Envoy's /config_dump does:
// protobuf JSON with Envoy's type URLs in nested Any fields. Accepted
// resources have no field outside the subset, so the subset's types show
// all of them.
func ResourceJSON(a *anypb.Any) ([]byte, error) {
	m, err := decodeResource(a)
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{Resolver: envoyNames{}}.Marshal(m)
}

// envoyNames resolves Envoy's type names and URLs to the subset's types.
type envoyNames struct{}

func (envoyNames) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(subsetPrefix + name); err == nil {
		return mt, nil
	}
	return protoregistry.GlobalTypes.FindMessageByName(name) // well-known types
}

func (r envoyNames) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	return r.FindMessageByName(typeName(url))
}

// typeName is the message name of a type URL (after its last slash).
func typeName(url string) protoreflect.FullName {
	return protoreflect.FullName(url[strings.LastIndexByte(url, '/')+1:])
}

func (envoyNames) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(name)
}

func (envoyNames) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}
