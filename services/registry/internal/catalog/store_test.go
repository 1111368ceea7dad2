package catalog

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inst(service, id string) Instance {
	return Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 8080, Region: "eu-west"}
}

func u64(v uint64) *uint64 { return &v }

func apply(t *testing.T, s *Store, index uint64, c Command) Result {
	t.Helper()
	return s.Apply(index, mustEncode(t, c))
}

func TestApplyCommands(t *testing.T) {
	type step struct {
		cmd     Command
		wantErr error  // matched with errors.Is
		wantFld string // FieldError field
	}
	ttl := inst("orders", "o-1")
	ttl.Check = Check{Type: CheckTTL, TTL: time.Second}
	active := inst("orders", "o-2")
	active.Check = Check{Type: CheckHTTP}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, s *Store)
	}{
		{
			name:  "register then read",
			steps: []step{{cmd: Register{Instance: inst("orders", "o-1"), Now: t0}}},
			check: func(t *testing.T, s *Store) {
				in, idx, ok := s.Instance(Key{"orders", "o-1"})
				if !ok || idx != 1 || in.Health != HealthPassing || in.CreateIndex != 1 || !in.HealthChangedAt.Equal(t0) {
					t.Fatalf("got %+v idx %d", in, idx)
				}
			},
		},
		{
			name:  "active check starts critical",
			steps: []step{{cmd: Register{Instance: active, Now: t0}}},
			check: func(t *testing.T, s *Store) {
				in, _, _ := s.Instance(Key{"orders", "o-2"})
				if in.Health != HealthCritical || in.Check.Interval != DefaultCheckInterval || in.Check.FailuresBeforeCritical != DefaultFailuresBeforeCritical || in.Check.HTTPPath != "/" {
					t.Fatalf("got %+v", in)
				}
			},
		},
		{
			name: "re-register keeps health and create index",
			steps: []step{
				{cmd: Register{Instance: ttl, Now: t0}},
				{cmd: SetHealth{Service: "orders", ID: "o-1", Health: HealthCritical, Output: "ttl expired", At: t0.Add(time.Second)}},
				{cmd: Register{Instance: ttl, Now: t0.Add(2 * time.Second)}},
			},
			check: func(t *testing.T, s *Store) {
				in, _, _ := s.Instance(Key{"orders", "o-1"})
				if in.Health != HealthCritical || in.CreateIndex != 1 || in.ModifyIndex != 3 || !in.HealthChangedAt.Equal(t0.Add(time.Second)) {
					t.Fatalf("got %+v", in)
				}
			},
		},
		{
			name: "deregister unknown is not found",
			steps: []step{
				{cmd: Deregister{Service: "orders", ID: "nope"}, wantErr: ErrNotFound},
			},
		},
		{
			name: "deregister guarded by modify index",
			steps: []step{
				{cmd: Register{Instance: inst("orders", "o-1"), Now: t0}},
				{cmd: Register{Instance: inst("orders", "o-1"), Now: t0}},
				{cmd: Deregister{Service: "orders", ID: "o-1", IfModifyIndex: 1}, wantErr: ErrConflict},
				{cmd: Deregister{Service: "orders", ID: "o-1", IfModifyIndex: 2}},
			},
			check: func(t *testing.T, s *Store) {
				if _, _, ok := s.Instance(Key{"orders", "o-1"}); ok {
					t.Fatal("still registered")
				}
				if svcs, _ := s.Services(); len(svcs) != 0 {
					t.Fatalf("services left: %+v", svcs)
				}
			},
		},
		{
			name: "set health on unknown instance",
			steps: []step{
				{cmd: SetHealth{Service: "orders", ID: "x", Health: HealthCritical}, wantErr: ErrNotFound},
			},
		},
		{
			name: "set health refuses unknown status",
			steps: []step{
				{cmd: Register{Instance: inst("orders", "o-1"), Now: t0}},
				{cmd: SetHealth{Service: "orders", ID: "o-1", Health: 9}, wantFld: "health"},
			},
		},
		{
			name: "bad registration names the field",
			steps: []step{
				{cmd: Register{Instance: Instance{Service: "Orders", ID: "o-1", Address: "10.0.0.1", Port: 80}}, wantFld: "instance.service"},
				{cmd: Register{Instance: Instance{Service: "orders", ID: "o-1", Address: "10.0.0.1", Port: 0}}, wantFld: "instance.port"},
				{cmd: Register{Instance: Instance{Service: "orders", ID: "o-1", Address: "bad host!", Port: 1}}, wantFld: "instance.address"},
			},
			check: func(t *testing.T, s *Store) {
				if _, n, _ := s.Counts(); n != 0 {
					t.Fatalf("%d instances after refused registrations", n)
				}
			},
		},
		{
			name: "config compare-and-set",
			steps: []step{
				{cmd: ApplyConfig{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`{"protocol":"http"}`), ExpectedVersion: u64(0)}},
				{cmd: ApplyConfig{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`{}`), ExpectedVersion: u64(0)}, wantErr: ErrConflict},
				{cmd: ApplyConfig{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`{"protocol":"grpc"}`), ExpectedVersion: u64(1)}},
				{cmd: DeleteConfig{Kind: "ServiceDefaults", Name: "orders", ExpectedVersion: u64(1)}, wantErr: ErrConflict},
				{cmd: ApplyConfig{Kind: "ServiceDefaults", Name: "users", Body: []byte(`{}`)}},
			},
			check: func(t *testing.T, s *Store) {
				d, _, ok := s.Config("ServiceDefaults", "orders")
				if !ok || d.Version != 3 || d.CreateIndex != 1 || string(d.Body) != `{"protocol":"grpc"}` {
					t.Fatalf("got %+v", d)
				}
				if docs, _ := s.Configs(""); len(docs) != 2 || docs[0].Name != "orders" {
					t.Fatalf("list: %+v", docs)
				}
			},
		},
		{
			name: "config refuses a non-object body and a bad name",
			steps: []step{
				{cmd: ApplyConfig{Kind: "ServiceDefaults", Name: "orders", Body: []byte(`[1]`)}, wantFld: "body"},
				{cmd: ApplyConfig{Kind: "ServiceDefaults", Name: "Orders!", Body: []byte(`{}`)}, wantFld: "name"},
				{cmd: ApplyConfig{kind0(), "orders", []byte(`{}`), nil}, wantFld: "kind"},
				{cmd: DeleteConfig{Kind: "ServiceDefaults", Name: "orders"}, wantErr: ErrNotFound},
			},
		},
		{
			name: "members",
			steps: []step{
				{cmd: SetMember{Member: Member{ID: "r1", APIAddress: "127.0.0.1:7100"}}},
				{cmd: SetMember{Member: Member{ID: "r2"}}, wantFld: "member.api_address"},
			},
			check: func(t *testing.T, s *Store) {
				if m, ok := s.Member("r1"); !ok || m.APIAddress != "127.0.0.1:7100" {
					t.Fatalf("got %+v", m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(0)
			for i, st := range tt.steps {
				res := apply(t, s, uint64(i+1), st.cmd)
				var fe *FieldError
				switch {
				case st.wantErr != nil && !errors.Is(res.Err, st.wantErr):
					t.Fatalf("step %d: err %v, want %v", i, res.Err, st.wantErr)
				case st.wantFld != "" && (!errors.As(res.Err, &fe) || fe.Field != st.wantFld):
					t.Fatalf("step %d: err %v, want field %s", i, res.Err, st.wantFld)
				case st.wantErr == nil && st.wantFld == "" && res.Err != nil:
					t.Fatalf("step %d: %v", i, res.Err)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func kind0() string { return "" }

func TestUnknownCommandRefused(t *testing.T) {
	s := NewStore(0)
	for _, cmd := range [][]byte{nil, {0}, {99, '{', '}'}} {
		res := s.Apply(1, cmd)
		if !errors.Is(res.Err, ErrUnknownCommand) {
			t.Errorf("%v: err %v", cmd, res.Err)
		}
	}
	res := s.Apply(2, []byte{byte(CmdRegister), '{'})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "decode command 1") {
		t.Fatalf("malformed body: %v", res.Err)
	}
}

func TestNormalizeInstanceErrors(t *testing.T) {
	bigMeta := map[string]string{}
	for i := range 20 {
		bigMeta[strings.Repeat("k", 10)+string(rune('a'+i))] = strings.Repeat("v", 300)
	}
	tests := []struct {
		name  string
		edit  func(in *Instance)
		field string
	}{
		{"empty service", func(in *Instance) { in.Service = "" }, "instance.service"},
		{"service too long", func(in *Instance) { in.Service = strings.Repeat("a", 64) }, "instance.service"},
		{"empty id", func(in *Instance) { in.ID = "" }, "instance.id"},
		{"id with space", func(in *Instance) { in.ID = "a b" }, "instance.id"},
		{"empty address", func(in *Instance) { in.Address = "" }, "instance.address"},
		{"unspecified ip", func(in *Instance) { in.Address = "0.0.0.0" }, "instance.address"},
		{"port too big", func(in *Instance) { in.Port = 70000 }, "instance.port"},
		{"bad region", func(in *Instance) { in.Region = "EU West" }, "instance.locality.region"},
		{"empty tag", func(in *Instance) { in.Tags = []string{"a", ""} }, "instance.tags[1]"},
		{"too many tags", func(in *Instance) { in.Tags = make([]string, MaxTags+1) }, "instance.tags"},
		{"metadata value too big", func(in *Instance) { in.Metadata = map[string]string{"k": strings.Repeat("v", MaxMetadataValLen+1)} }, `instance.metadata["k"]`},
		{"metadata too big in all", func(in *Instance) { in.Metadata = bigMeta }, "instance.metadata"},
		{"metadata bad key", func(in *Instance) { in.Metadata = map[string]string{"a b": "v"} }, `instance.metadata["a b"]`},
		{"ttl too short", func(in *Instance) { in.Check = Check{Type: CheckTTL, TTL: time.Millisecond} }, "instance.check.ttl"},
		{"unknown check", func(in *Instance) { in.Check = Check{Type: 42} }, "instance.check.type"},
		{"timeout above interval", func(in *Instance) {
			in.Check = Check{Type: CheckTCP, Interval: time.Second, Timeout: 2 * time.Second}
		}, "instance.check.timeout"},
		{"http path", func(in *Instance) { in.Check = Check{Type: CheckHTTP, HTTPPath: "health"} }, "instance.check.http_path"},
		{"unknown health", func(in *Instance) { in.Health = 7 }, "instance.health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inst("orders", "o-1")
			tt.edit(&in)
			_, err := NormalizeInstance(in)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err %v, want field %s", err, tt.field)
			}
		})
	}
	ok := inst("orders", "o-1")
	ok.Address = "orders.internal"
	ok.Tags = []string{"v2", "canary", "v2"}
	got, err := NormalizeInstance(ok)
	if err != nil || !reflect.DeepEqual(got.Tags, []string{"canary", "v2"}) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	s := NewStore(0)
	apply(t, s, 1, Register{Instance: inst("orders", "o-1"), Now: t0})
	apply(t, s, 2, Register{Instance: inst("users", "u-1"), Now: t0})
	apply(t, s, 3, ApplyConfig{Kind: "HTTPRoute", Name: "orders", Body: []byte(`{"a":1}`)})
	apply(t, s, 4, SetMember{Member: Member{ID: "r1", APIAddress: "a:1"}})
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := NewStore(0)
	apply(t, r, 1, Register{Instance: inst("stale", "s-1"), Now: t0})
	if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Snapshot(), r.Snapshot()) {
		t.Fatalf("restored state differs:\n%+v\n%+v", s.Snapshot(), r.Snapshot())
	}
	if b := r.WatchFrom(2, 100); !b.Reset {
		t.Fatal("watch from before the snapshot must reset")
	}
	if b := r.WatchFrom(4, 100); b.Reset || len(b.Events) != 0 || b.Index != 4 {
		t.Fatalf("watch from the snapshot index: %+v", b)
	}
	if err := r.Restore(strings.NewReader(`{"instances":[{"service":""}]}`)); err == nil {
		t.Fatal("restore accepted an instance without a name")
	}
}

func TestWatchFrom(t *testing.T) {
	s := NewStore(4)
	apply(t, s, 1, Register{Instance: inst("orders", "o-1"), Now: t0})
	apply(t, s, 2, SetMember{Member: Member{ID: "r1", APIAddress: "a:1"}})
	apply(t, s, 3, Register{Instance: inst("orders", "o-2"), Now: t0})
	apply(t, s, 4, Deregister{Service: "orders", ID: "o-1"})

	b := s.WatchFrom(0, 100)
	if !b.Reset || b.Index != 4 || len(b.Events) != 1 || b.Events[0].Instance.ID != "o-2" {
		t.Fatalf("from 0: %+v", b)
	}
	b = s.WatchFrom(1, 100)
	if b.Reset || b.Index != 4 || len(b.Events) != 2 || b.Events[0].Index != 3 || b.Events[1].Type != EventInstanceDelete {
		t.Fatalf("from 1: %+v", b)
	}
	b = s.WatchFrom(1, 1)
	if b.Index != 3 || len(b.Events) != 1 {
		t.Fatalf("limited: %+v", b)
	}
	b = s.WatchFrom(9, 100)
	if b.Reset || len(b.Events) != 0 || b.Index != 9 {
		t.Fatalf("from the future: %+v", b)
	}
	// Overflow the 4-event ring: the oldest events go, and a watcher that
	// needed them gets a reset.
	for i := uint64(5); i <= 8; i++ {
		apply(t, s, i, Register{Instance: inst("users", "u-1"), Now: t0})
	}
	if b := s.WatchFrom(3, 100); !b.Reset {
		t.Fatalf("from 3 after overflow: %+v", b)
	}
	if b := s.WatchFrom(4, 100); b.Reset || len(b.Events) != 4 {
		t.Fatalf("from 4 after overflow: %+v", b)
	}
}

func TestChangedSignals(t *testing.T) {
	s := NewStore(0)
	ch := s.Changed()
	apply(t, s, 1, SetMember{Member: Member{ID: "r1", APIAddress: "a:1"}})
	select {
	case <-ch:
		t.Fatal("a member change is not a catalog change")
	default:
	}
	apply(t, s, 2, Register{Instance: inst("orders", "o-1"), Now: t0})
	select {
	case <-ch:
	default:
		t.Fatal("no signal after a registration")
	}
}

func TestDeterministic(t *testing.T) {
	cmds := []Command{
		Register{Instance: inst("orders", "o-1"), Now: t0},
		Register{Instance: inst("orders", "o-2"), Now: t0},
		SetHealth{Service: "orders", ID: "o-2", Health: HealthCritical, At: t0},
		ApplyConfig{Kind: "HTTPRoute", Name: "r", Body: []byte(`{}`)},
		Deregister{Service: "orders", ID: "o-1"},
	}
	var snaps [2]bytes.Buffer
	for i := range snaps {
		s := NewStore(0)
		for j, c := range cmds {
			apply(t, s, uint64(j+1), c)
		}
		if _, err := s.Snapshot().WriteTo(&snaps[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(snaps[0].Bytes(), snaps[1].Bytes()) {
		t.Fatal("two stores applying the same log differ")
	}
}
