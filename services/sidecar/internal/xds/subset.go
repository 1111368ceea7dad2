package xds

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	// Envoy's own message types name the fields the subset leaves out (in
	// NACKs) and show accepted resources in /config_dump; only those rare
	// paths build their descriptors.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

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
// of live heap, more than half of the sidecar's.
const subsetPrefix = supported.Prefix

const typeURLPrefix = "type.googleapis.com/"

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
	name := url[strings.LastIndexByte(url, '/')+1:]
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(subsetPrefix + name))
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

// unknownFieldName names the first unknown field of a subset message by
// Envoy's descriptor of the same type (built only on this error path).
func unknownFieldName(d protoreflect.MessageDescriptor, unknown []byte) string {
	num, _, _ := protowire.ConsumeTag(unknown)
	if ed, err := protoregistry.GlobalFiles.FindDescriptorByName(envoyName(d)); err == nil {
		if md, ok := ed.(protoreflect.MessageDescriptor); ok {
			if fd := md.Fields().ByNumber(num); fd != nil {
				return string(fd.Name())
			}
		}
	}
	return fmt.Sprintf("number %d (unknown to Envoy's %s)", num, envoyName(d))
}
