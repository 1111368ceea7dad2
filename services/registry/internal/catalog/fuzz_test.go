package catalog

import (
	"reflect"
	"testing"
)

// FuzzApply feeds arbitrary log entries to the store: it must never panic,
// and an entry it refuses must leave the catalog exactly as it was.
func FuzzApply(f *testing.F) {
	for _, c := range []Command{
		Register{Instance: inst("orders", "o-1"), Now: t0},
		Deregister{Service: "orders", ID: "o-1"},
		SetHealth{Service: "orders", ID: "o-1", Health: HealthCritical},
		ApplyConfig{Kind: "HTTPRoute", Name: "r", Body: []byte(`{"x":1}`), ExpectedVersion: u64(0)},
		DeleteConfig{Kind: "HTTPRoute", Name: "r"},
		SetMember{Member: Member{ID: "r1", APIAddress: "a:1"}},
	} {
		f.Add(mustEncode(f, c))
	}
	f.Add([]byte{byte(CmdRegister), '{', '}'})
	f.Add([]byte{200})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		s := NewStore(16)
		seed := mustEncode(t, Register{Instance: inst("orders", "o-1"), Now: t0})
		if res := s.Apply(1, seed); res.Err != nil {
			t.Fatal(res.Err)
		}
		before := s.Snapshot()
		res := s.Apply(2, cmd)
		after := s.Snapshot()
		before.Index, after.Index = 0, 0
		if res.Err != nil && !reflect.DeepEqual(before, after) {
			t.Fatalf("refused command %q changed the state:\n%+v\n%+v", cmd, before, after)
		}
	})
}

// FuzzNormalizeInstance checks that whatever NormalizeInstance accepts is
// accepted again unchanged (normalization is idempotent).
func FuzzNormalizeInstance(f *testing.F) {
	f.Add("orders", "o-1", "10.0.0.1", uint32(80), "v1", "k", "v", "eu")
	f.Add("", "", "", uint32(0), "", "", "", "")
	f.Add("a", "b:c", "host.example.", uint32(65535), "x y", "a/b", "\xff", "Z")
	f.Fuzz(func(t *testing.T, svc, id, addr string, port uint32, tag, mk, mv, region string) {
		in := Instance{Service: svc, ID: id, Address: addr, Port: port, Tags: []string{tag}, Metadata: map[string]string{mk: mv}, Region: region}
		out, err := NormalizeInstance(in)
		if err != nil {
			return
		}
		again, err := NormalizeInstance(out)
		if err != nil {
			t.Fatalf("normalized instance refused: %v", err)
		}
		if again.Service != out.Service || len(again.Tags) != len(out.Tags) {
			t.Fatalf("not idempotent: %+v vs %+v", out, again)
		}
	})
}
