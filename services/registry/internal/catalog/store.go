package catalog

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Result is what applying one command produced.
type Result struct {
	Index uint64
	Err   error
	// Config is the stored document after an ApplyConfig.
	Config *ConfigDoc
	// Changed is false when the command was valid but changed nothing.
	Changed bool
}

// Store holds the catalog. Apply is called by one goroutine (Raft's FSM
// loop); reads may come from any goroutine.
type Store struct {
	mu        sync.RWMutex
	index     uint64
	instances map[string]map[string]*Instance // service → id → instance
	configs   map[string]map[string]*ConfigDoc
	members   map[string]Member
	log       *changeLog
	changed   chan struct{}
}

// DefaultChangeLogSize is how many recent events a Store keeps for watchers
// resuming from an index.
const DefaultChangeLogSize = 8192

// NewStore returns an empty catalog that keeps the last logSize events for
// watchers (DefaultChangeLogSize when logSize ≤ 0).
func NewStore(logSize int) *Store {
	if logSize <= 0 {
		logSize = DefaultChangeLogSize
	}
	return &Store{
		instances: map[string]map[string]*Instance{},
		configs:   map[string]map[string]*ConfigDoc{},
		members:   map[string]Member{},
		log:       newChangeLog(logSize, 0),
		changed:   make(chan struct{}),
	}
}

// Apply applies one encoded command committed at index. The state changes
// only when the command succeeds; an unknown type or an invalid command
// leaves it untouched and is reported in Result.Err.
func (s *Store) Apply(index uint64, cmd []byte) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index > s.index {
		s.index = index
	}
	if len(cmd) == 0 {
		return Result{Index: index, Err: fmt.Errorf("%w: empty command", ErrUnknownCommand)}
	}
	h, ok := commands[CommandType(cmd[0])]
	if !ok {
		return Result{Index: index, Err: fmt.Errorf("%w %d", ErrUnknownCommand, cmd[0])}
	}
	res := h(s, index, cmd[1:])
	if res.Changed {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return res
}

// AdvanceIndex records that the log reached index without a command for
// the store (Raft configuration entries), so reads report it.
func (s *Store) AdvanceIndex(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index > s.index {
		s.index = index
	}
}

// Index is the Raft index of the last entry applied.
func (s *Store) Index() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index
}

// Changed returns a channel closed at the next change of the catalog.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

func (s *Store) emit(ev Event) { s.log.add(ev) }

func (s *Store) applyRegister(index uint64, c Register) Result {
	in, err := NormalizeInstance(c.Instance)
	if err != nil {
		return Result{Index: index, Err: err}
	}
	byID := s.instances[in.Service]
	old := byID[in.ID]
	in.CreateIndex, in.ModifyIndex = index, index
	in.HealthChangedAt = c.Now
	switch {
	case old != nil && in.Health == HealthUnspecified && old.Check.Type == in.Check.Type:
		// A re-registration keeps the health the checks decided.
		in.CreateIndex = old.CreateIndex
		in.Health, in.HealthOutput, in.HealthChangedAt = old.Health, old.HealthOutput, old.HealthChangedAt
	case old != nil:
		in.CreateIndex = old.CreateIndex
	}
	if in.Health == HealthUnspecified {
		in.Health = HealthPassing
		if in.Check.Type.Active() {
			in.Health = HealthCritical
			in.HealthOutput = "waiting for the first check"
		}
	}
	if byID == nil {
		byID = map[string]*Instance{}
		s.instances[in.Service] = byID
	}
	stored := in.clone()
	byID[in.ID] = stored
	s.emit(Event{Type: EventInstanceUpsert, Index: index, Instance: stored})
	return Result{Index: index, Changed: true}
}

func (s *Store) applyDeregister(index uint64, c Deregister) Result {
	k := Key{c.Service, c.ID}
	if err := ValidateKey(k); err != nil {
		return Result{Index: index, Err: err}
	}
	old := s.instances[c.Service][c.ID]
	if old == nil {
		return Result{Index: index, Err: fmt.Errorf("instance %s/%s: %w", c.Service, c.ID, ErrNotFound)}
	}
	if c.IfModifyIndex != 0 && old.ModifyIndex != c.IfModifyIndex {
		return Result{Index: index, Err: fmt.Errorf("instance %s/%s changed at index %d after %d: %w", c.Service, c.ID, old.ModifyIndex, c.IfModifyIndex, ErrConflict)}
	}
	delete(s.instances[c.Service], c.ID)
	if len(s.instances[c.Service]) == 0 {
		delete(s.instances, c.Service)
	}
	s.emit(Event{Type: EventInstanceDelete, Index: index, Instance: old})
	return Result{Index: index, Changed: true}
}

func (s *Store) applySetHealth(index uint64, c SetHealth) Result {
	k := Key{c.Service, c.ID}
	if err := ValidateKey(k); err != nil {
		return Result{Index: index, Err: err}
	}
	if c.Health < HealthPassing || c.Health > HealthCritical {
		return Result{Index: index, Err: fieldErr("health", "unknown health %d", c.Health)}
	}
	if len(c.Output) > MaxHealthOutputLen {
		c.Output = c.Output[:MaxHealthOutputLen]
	}
	old := s.instances[c.Service][c.ID]
	if old == nil {
		return Result{Index: index, Err: fmt.Errorf("instance %s/%s: %w", c.Service, c.ID, ErrNotFound)}
	}
	if c.IfModifyIndex != 0 && old.ModifyIndex != c.IfModifyIndex {
		return Result{Index: index, Err: fmt.Errorf("instance %s/%s changed at index %d after %d: %w", c.Service, c.ID, old.ModifyIndex, c.IfModifyIndex, ErrConflict)}
	}
	if old.Health == c.Health && old.HealthOutput == c.Output {
		return Result{Index: index}
	}
	in := old.clone()
	if in.Health != c.Health {
		in.HealthChangedAt = c.At
	}
	in.Health, in.HealthOutput, in.ModifyIndex = c.Health, c.Output, index
	s.instances[c.Service][c.ID] = in
	s.emit(Event{Type: EventInstanceUpsert, Index: index, Instance: in})
	return Result{Index: index, Changed: true}
}

func checkVersion(field string, expected *uint64, cur *ConfigDoc) error {
	if expected == nil {
		return nil
	}
	var have uint64
	if cur != nil {
		have = cur.Version
	}
	if *expected != have {
		if have == 0 {
			return fmt.Errorf("%s: expected version %d but the document does not exist: %w", field, *expected, ErrConflict)
		}
		return fmt.Errorf("%s: expected version %d but the document is at version %d: %w", field, *expected, have, ErrConflict)
	}
	return nil
}

func (s *Store) applyConfig(index uint64, c ApplyConfig) Result {
	if err := errors.Join(ValidateConfigKey(c.Kind, c.Name), ValidateConfigBody(c.Body)); err != nil {
		return Result{Index: index, Err: err}
	}
	old := s.configs[c.Kind][c.Name]
	if err := checkVersion("expected_version", c.ExpectedVersion, old); err != nil {
		return Result{Index: index, Err: err}
	}
	doc := &ConfigDoc{Kind: c.Kind, Name: c.Name, Version: index, Body: slices.Clone(c.Body), CreateIndex: index}
	if old != nil {
		doc.CreateIndex = old.CreateIndex
	}
	if s.configs[c.Kind] == nil {
		s.configs[c.Kind] = map[string]*ConfigDoc{}
	}
	s.configs[c.Kind][c.Name] = doc
	s.emit(Event{Type: EventConfigUpsert, Index: index, Config: doc})
	return Result{Index: index, Config: doc, Changed: true}
}

func (s *Store) applyDeleteConfig(index uint64, c DeleteConfig) Result {
	if err := ValidateConfigKey(c.Kind, c.Name); err != nil {
		return Result{Index: index, Err: err}
	}
	old := s.configs[c.Kind][c.Name]
	if old == nil {
		return Result{Index: index, Err: fmt.Errorf("config %s/%s: %w", c.Kind, c.Name, ErrNotFound)}
	}
	if err := checkVersion("expected_version", c.ExpectedVersion, old); err != nil {
		return Result{Index: index, Err: err}
	}
	delete(s.configs[c.Kind], c.Name)
	if len(s.configs[c.Kind]) == 0 {
		delete(s.configs, c.Kind)
	}
	s.emit(Event{Type: EventConfigDelete, Index: index, Config: old})
	return Result{Index: index, Changed: true}
}

func (s *Store) applySetMember(index uint64, c SetMember) Result {
	if c.Member.ID == "" {
		return Result{Index: index, Err: fieldErr("member.id", "is empty")}
	}
	if c.Remove {
		delete(s.members, c.Member.ID)
		return Result{Index: index}
	}
	if c.Member.APIAddress == "" {
		return Result{Index: index, Err: fieldErr("member.api_address", "is empty")}
	}
	s.members[c.Member.ID] = c.Member
	return Result{Index: index}
}

// Instance returns one instance.
func (s *Store) Instance(k Key) (*Instance, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in, ok := s.instances[k.Service][k.ID]
	return in, s.index, ok
}

// Filter selects instances in Instances; zero fields match everything.
type Filter struct {
	Service string
	Region  string
	Health  Health
}

func (f Filter) match(in *Instance) bool {
	return (f.Region == "" || in.Region == f.Region) && (f.Health == HealthUnspecified || in.Health == f.Health)
}

// Instances returns the instances matching f, sorted by service then ID,
// and the index they reflect.
func (s *Store) Instances(f Filter) ([]*Instance, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Instance
	add := func(byID map[string]*Instance) {
		for _, in := range byID {
			if f.match(in) {
				out = append(out, in)
			}
		}
	}
	if f.Service != "" {
		add(s.instances[f.Service])
	} else {
		for _, byID := range s.instances {
			add(byID)
		}
	}
	slices.SortFunc(out, compareInstances)
	return out, s.index
}

func compareInstances(a, b *Instance) int {
	return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
}

// ServiceSummary describes one service.
type ServiceSummary struct {
	Name      string
	Instances int
	Passing   int
	Critical  int
	Tags      []string
	Regions   []string
}

// Services summarizes every service, sorted by name.
func (s *Store) Services() ([]ServiceSummary, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]ServiceSummary, 0, len(s.instances))
	for name, byID := range s.instances {
		sum := ServiceSummary{Name: name, Instances: len(byID)}
		for _, in := range byID {
			switch in.Health {
			case HealthPassing:
				sum.Passing++
			case HealthCritical:
				sum.Critical++
			}
			sum.Tags = append(sum.Tags, in.Tags...)
			if in.Region != "" {
				sum.Regions = append(sum.Regions, in.Region)
			}
		}
		slices.Sort(sum.Tags)
		sum.Tags = slices.Compact(sum.Tags)
		slices.Sort(sum.Regions)
		sum.Regions = slices.Compact(sum.Regions)
		out = append(out, sum)
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int { return cmp.Compare(a.Name, b.Name) })
	return out, s.index
}

// Config returns one config document.
func (s *Store) Config(kind, name string) (*ConfigDoc, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	doc, ok := s.configs[kind][name]
	return doc, s.index, ok
}

// Configs returns the config documents of one kind, or of every kind when
// kind is empty, sorted by kind then name.
func (s *Store) Configs(kind string) ([]*ConfigDoc, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*ConfigDoc
	for k, byName := range s.configs {
		if kind != "" && k != kind {
			continue
		}
		for _, d := range byName {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *ConfigDoc) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
	return out, s.index
}

// Member returns a node's API address entry.
func (s *Store) Member(id string) (Member, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.members[id]
	return m, ok
}

// Counts reports the catalog's size for metrics.
func (s *Store) Counts() (services, instances, configs int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, byID := range s.instances {
		instances += len(byID)
	}
	for _, byName := range s.configs {
		configs += len(byName)
	}
	return len(s.instances), instances, configs
}
