package catalog

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// Snapshot is a point-in-time copy of the catalog, cheap to take: stored
// values are immutable, so only the maps are copied.
type Snapshot struct {
	Index     uint64       `json:"index"`
	Instances []*Instance  `json:"instances"`
	Configs   []*ConfigDoc `json:"configs"`
	Members   []Member     `json:"members"`
}

// Snapshot copies the current state.
func (s *Store) Snapshot() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := &Snapshot{Index: s.index}
	for _, byID := range s.instances {
		for _, in := range byID {
			snap.Instances = append(snap.Instances, in)
		}
	}
	for _, byName := range s.configs {
		for _, d := range byName {
			snap.Configs = append(snap.Configs, d)
		}
	}
	for _, m := range s.members {
		snap.Members = append(snap.Members, m)
	}
	slices.SortFunc(snap.Instances, compareInstances)
	return snap
}

// WriteTo writes the snapshot as JSON.
func (snap *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	if err := json.NewEncoder(cw).Encode(snap); err != nil {
		return cw.n, fmt.Errorf("write catalog snapshot: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the whole state with a snapshot read from r. Watchers
// holding an index older than the snapshot's get a reset.
func (s *Store) Restore(r io.Reader) error {
	var snap Snapshot
	if err := json.NewDecoder(r).Decode(&snap); err != nil {
		return fmt.Errorf("read catalog snapshot: %w", err)
	}
	instances := map[string]map[string]*Instance{}
	for i, in := range snap.Instances {
		if in == nil || ValidateKey(in.Key()) != nil {
			return fmt.Errorf("read catalog snapshot: instance %d has no valid service and id", i)
		}
		if instances[in.Service] == nil {
			instances[in.Service] = map[string]*Instance{}
		}
		instances[in.Service][in.ID] = in
	}
	configs := map[string]map[string]*ConfigDoc{}
	for i, d := range snap.Configs {
		if d == nil || ValidateConfigKey(d.Kind, d.Name) != nil {
			return fmt.Errorf("read catalog snapshot: config %d has no valid kind and name", i)
		}
		if configs[d.Kind] == nil {
			configs[d.Kind] = map[string]*ConfigDoc{}
		}
		configs[d.Kind][d.Name] = d
	}
	members := map[string]Member{}
	for _, m := range snap.Members {
		members[m.ID] = m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = snap.Index
	s.instances, s.configs, s.members = instances, configs, members
	s.log = newChangeLog(len(s.log.ring), snap.Index)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}
