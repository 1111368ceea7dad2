package catalog

import "sort"

// changeLog keeps the most recent events in a ring, so a watcher resuming
// from an index gets exactly the changes after it. floor is the highest
// index whose events may have been dropped: resuming from an index below it
// needs a full snapshot instead.
type changeLog struct {
	ring  []Event
	start int // position of the oldest event
	n     int
	floor uint64
}

func newChangeLog(size int, floor uint64) *changeLog {
	return &changeLog{ring: make([]Event, size), floor: floor}
}

func (l *changeLog) add(ev Event) {
	if l.n == len(l.ring) {
		l.floor = max(l.floor, l.ring[l.start].Index)
		l.ring[l.start] = ev
		l.start = (l.start + 1) % len(l.ring)
		return
	}
	l.ring[(l.start+l.n)%len(l.ring)] = ev
	l.n++
}

func (l *changeLog) at(i int) Event { return l.ring[(l.start+i)%len(l.ring)] }

// since returns up to limit events after index from; ok is false when some
// of them are no longer held.
func (l *changeLog) since(from uint64, limit int) (events []Event, ok bool) {
	if from < l.floor {
		return nil, false
	}
	first := sort.Search(l.n, func(i int) bool { return l.at(i).Index > from })
	for i := first; i < l.n && len(events) < limit; i++ {
		events = append(events, l.at(i))
	}
	return events, true
}

// WatchBatch is what a watcher receives next.
type WatchBatch struct {
	// Reset: Events are the whole catalog at Index, replacing what the
	// watcher had.
	Reset  bool
	Events []Event
	// Index: the watcher now has every change up to here.
	Index uint64
}

// WatchFrom returns the changes after index from, at most limit events (a
// reset is never cut). from = 0, or an index older than the change log
// holds, gives a reset with the whole catalog.
func (s *Store) WatchFrom(from uint64, limit int) WatchBatch {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if from > 0 {
		if events, ok := s.log.since(from, limit); ok {
			b := WatchBatch{Events: events, Index: max(from, s.index)}
			if len(events) == limit {
				b.Index = events[len(events)-1].Index
			}
			return b
		}
	}
	b := WatchBatch{Reset: true, Index: s.index}
	for _, byID := range s.instances {
		for _, in := range byID {
			b.Events = append(b.Events, Event{Type: EventInstanceUpsert, Index: in.ModifyIndex, Instance: in})
		}
	}
	for _, byName := range s.configs {
		for _, d := range byName {
			b.Events = append(b.Events, Event{Type: EventConfigUpsert, Index: d.Version, Config: d})
		}
	}
	sort.Slice(b.Events, func(i, j int) bool { return b.Events[i].Index < b.Events[j].Index })
	return b
}
