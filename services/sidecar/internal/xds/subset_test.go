package xds

import (
	"fmt"
	"strings"
	"testing"

	envoyclusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	envoyendpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	envoylistenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	envoyroutev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	clusterv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/cluster/v3"
	endpointv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/endpoint/v3"
	listenerv3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/listener/v3"
	routev3 "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/config/route/v3"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/route"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds/supported"
)

// The tests build resources with Envoy's own types, as a control plane
// does, and hand them to the translators the way the client does: as wire
// bytes decoded into the subset.

func subsetOf(t testing.TB, m proto.Message) proto.Message {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := decodeResource(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateCluster(t testing.TB, c *envoyclusterv3.Cluster) (ClusterConfig, error) {
	return ValidateCluster(subsetOf(t, c).(*clusterv3.Cluster))
}

func validateEndpoints(t testing.TB, c *envoyendpointv3.ClusterLoadAssignment) (Endpoints, error) {
	return ValidateEndpoints(subsetOf(t, c).(*endpointv3.ClusterLoadAssignment))
}

func validateRouteConfig(t testing.TB, c *envoyroutev3.RouteConfiguration) (*route.Table, error) {
	return ValidateRouteConfig(subsetOf(t, c).(*routev3.RouteConfiguration))
}

func validateListener(t testing.TB, c *envoylistenerv3.Listener) (ListenerConfig, error) {
	return ValidateListener(subsetOf(t, c).(*listenerv3.Listener))
}

// TestSubsetIsTheTable checks the generated subset against the table it was
// written from and against Envoy: every listed field is there with Envoy's
// number and kind, and nothing else is (run `make proto` when it fails).
func TestSubsetIsTheTable(t *testing.T) {
	for name, fields := range allTables(t) {
		sub, err := newSubset(typeURLPrefix + string(name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		sd := sub.ProtoReflect().Descriptor()
		ed := envoyDescriptor(t, name)
		if sd.Fields().Len() != len(fields) {
			t.Errorf("%s: the subset has %d fields, the table %d", name, sd.Fields().Len(), len(fields))
		}
		for _, f := range fields {
			sf, ef := sd.Fields().ByName(protoreflect.Name(f)), ed.Fields().ByName(protoreflect.Name(f))
			if sf == nil || ef == nil {
				t.Errorf("%s.%s: missing (subset %v, Envoy %v)", name, f, sf != nil, ef != nil)
				continue
			}
			if sf.Number() != ef.Number() || sf.Kind() != ef.Kind() || sf.Cardinality() != ef.Cardinality() || sf.IsMap() != ef.IsMap() {
				t.Errorf("%s.%s: subset %d %v %v, Envoy %d %v %v", name, f, sf.Number(), sf.Kind(), sf.Cardinality(), ef.Number(), ef.Kind(), ef.Cardinality())
			}
			if so, eo := sf.ContainingOneof(), ef.ContainingOneof(); (so == nil) != (eo == nil) || so != nil && so.Name() != eo.Name() {
				t.Errorf("%s.%s: not in the same oneof as in Envoy", name, f)
			}
			if sf.Message() != nil && envoyName(sf.Message()) != ef.Message().FullName() {
				t.Errorf("%s.%s: message type %s, Envoy's %s", name, f, sf.Message().FullName(), ef.Message().FullName())
			}
			if sf.Enum() != nil && envoyName(sf.Enum()) != ef.Enum().FullName() {
				t.Errorf("%s.%s: enum %s, Envoy's %s", name, f, sf.Enum().FullName(), ef.Enum().FullName())
			}
		}
	}
}

// TestOmittedFieldsAreNamed: every field of Envoy's types that the subset
// leaves out is named in NACKs as Envoy names it, and no field the subset
// has is in the table of omitted ones.
func TestOmittedFieldsAreNamed(t *testing.T) {
	types := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		sd := mt.Descriptor()
		if !strings.HasPrefix(string(sd.FullName()), subsetPrefix) {
			return true
		}
		types++
		ed := envoyDescriptor(t, envoyName(sd))
		for i := 0; i < ed.Fields().Len(); i++ {
			ef := ed.Fields().Get(i)
			name, omitted := omittedField(ed.FullName(), ef.Number())
			switch inSubset := sd.Fields().ByNumber(ef.Number()) != nil; {
			case inSubset && omitted:
				t.Errorf("%s.%s is in the subset and in the table of omitted fields", ed.FullName(), ef.Name())
			case !inSubset && name != string(ef.Name()):
				t.Errorf("%s field %d: named %q, Envoy's name is %s", ed.FullName(), ef.Number(), name, ef.Name())
			}
		}
		return true
	})
	if listed := len(allTables(t)); types < listed {
		t.Fatalf("%d subset types registered, the tables list %d", types, listed)
	}
	if _, ok := omittedField("envoy.config.cluster.v3.Cluster", 1048575); ok {
		t.Error("a number Envoy does not have is named")
	}
}

// TestTypeURLs: the sidecar's type URLs are go-control-plane's.
func TestTypeURLs(t *testing.T) {
	for got, want := range map[string]string{ListenerType: resourcev3.ListenerType, RouteType: resourcev3.RouteType,
		ClusterType: resourcev3.ClusterType, EndpointType: resourcev3.EndpointType} {
		if got != want {
			t.Errorf("type URL %s, go-control-plane's %s", got, want)
		}
	}
}

func allTables(t *testing.T) map[protoreflect.FullName][]string {
	t.Helper()
	all, err := supported.All()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func envoyDescriptor(t testing.TB, name protoreflect.FullName) protoreflect.MessageDescriptor {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor)
}

// tableCheck is the reference for checkFields: a walk over Envoy's own
// message, refusing any set field the table does not list.
func tableCheck(m protoreflect.Message, path string) error {
	name := m.Descriptor().FullName()
	if supported.ValueTypes[name] {
		return nil
	}
	if name == "google.protobuf.Any" {
		inner, err := m.Interface().(*anypb.Any).UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return tableCheck(inner.ProtoReflect(), path)
	}
	allowed, ok := supported.Fields[name]
	if !ok {
		return fmt.Errorf("%s: type %s", path, name)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case !containsName(allowed, fd.Name()):
			err = fmt.Errorf("%s", p)
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len() && err == nil; i++ {
				err = tableCheck(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = tableCheck(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()))
				return err == nil
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			err = tableCheck(v.Message(), p)
		}
		return err == nil
	})
	return err
}

func containsName(names []string, n protoreflect.Name) bool {
	for _, s := range names {
		if s == string(n) {
			return true
		}
	}
	return false
}

// FuzzSubsetAgreesWithTable decodes arbitrary bytes as each resource type,
// once as Envoy's message and once as the subset's: the subset must refuse
// exactly the messages that set a field the table does not list. (Fields
// unknown even to Envoy are dropped first: the subset refuses those too,
// and the reference cannot see them.)
func FuzzSubsetAgreesWithTable(f *testing.F) {
	for _, m := range []proto.Message{edsCluster(), cla(), routeConfig(f), hcmListener(f, rbacFilter(f))} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&envoyclusterv3.Cluster{}, &envoyendpointv3.ClusterLoadAssignment{}, &envoyroutev3.RouteConfiguration{}, &envoylistenerv3.Listener{}} {
			if proto.Unmarshal(b, m) != nil || !dropUnknown(m.ProtoReflect()) {
				continue
			}
			a, err := anypb.New(m)
			if err != nil {
				continue
			}
			s, err := decodeResource(a)
			if err != nil {
				t.Fatalf("%T decodes as Envoy's but not as the subset's: %v", m, err)
			}
			subsetErr, tableErr := checkFields(s), tableCheck(m.ProtoReflect(), "")
			if (subsetErr == nil) != (tableErr == nil) {
				t.Fatalf("%T: subset says %v, table says %v", m, subsetErr, tableErr)
			}
		}
	})
}

// dropUnknown removes fields unknown to Envoy's types, inside Any fields
// too; false when an Any cannot be decoded (the reference cannot walk it).
func dropUnknown(m protoreflect.Message) bool {
	m.SetUnknown(nil)
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len() && ok; i++ {
				ok = dropUnknown(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				ok = dropUnknown(mv.Message())
				return ok
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			ok = dropUnknown(v.Message())
		}
		return ok
	})
	if ok && m.Descriptor().FullName() == "google.protobuf.Any" {
		a := m.Interface().(*anypb.Any)
		inner, err := a.UnmarshalNew()
		if err != nil || !dropUnknown(inner.ProtoReflect()) {
			return false
		}
		b, err := proto.Marshal(inner)
		if err != nil {
			return false
		}
		a.Value = b
	}
	return ok
}

func TestUnknownToEnvoyIsRefused(t *testing.T) {
	b, _ := proto.Marshal(edsCluster())
	b = protowire.AppendVarint(protowire.AppendTag(b, 1048575, protowire.VarintType), 1)
	s, err := decodeResource(&anypb.Any{TypeUrl: typeURLPrefix + "envoy.config.cluster.v3.Cluster", Value: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkFields(s); err == nil || !strings.Contains(err.Error(), "field number 1048575 (unknown to Envoy's envoy.config.cluster.v3.Cluster) is not supported") {
		t.Fatalf("got %v", err)
	}
}

// FuzzValidate feeds arbitrary bytes through every translator, decoded
// into the subset as the client does: they must return a config or an
// error, never panic.
func FuzzValidate(f *testing.F) {
	for _, m := range []proto.Message{edsCluster(), cla(), routeConfig(f), hcmListener(f, rbacFilter(f))} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c clusterv3.Cluster
		if proto.Unmarshal(b, &c) == nil {
			_, _ = ValidateCluster(&c)
		}
		var e endpointv3.ClusterLoadAssignment
		if proto.Unmarshal(b, &e) == nil {
			_, _ = ValidateEndpoints(&e)
		}
		var r routev3.RouteConfiguration
		if proto.Unmarshal(b, &r) == nil {
			_, _ = ValidateRouteConfig(&r)
		}
		var l listenerv3.Listener
		if proto.Unmarshal(b, &l) == nil {
			_, _ = ValidateListener(&l)
		}
	})
}

// TestEnvoyNamesResolveToTheSubset: /config_dump prints nested Any fields
// with the subset's types (the binary has no others), well-known types
// with their own.
func TestEnvoyNamesResolveToTheSubset(t *testing.T) {
	for url, want := range map[string]string{
		typeURLPrefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": subsetPrefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		ClusterType: subsetPrefix + "envoy.config.cluster.v3.Cluster",
		typeURLPrefix + "google.protobuf.Duration": "google.protobuf.Duration",
	} {
		mt, err := envoyNames{}.FindMessageByURL(url)
		if err != nil || string(mt.Descriptor().FullName()) != want {
			t.Errorf("%s resolves to %v (%v), want %s", url, mt, err, want)
		}
	}
}
