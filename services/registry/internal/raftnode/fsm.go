package raftnode

import (
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/switchyard-mesh/switchyard/services/registry/internal/catalog"
)

// fsm adapts the pure catalog to Raft. Raft hands it committed entries in
// batches; it applies commands and lets the index advance over the others.
type fsm struct {
	store   *catalog.Store
	applied *indexWaiter
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var last uint64
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = f.store.Apply(l.Index, l.Data)
		} else {
			f.store.AdvanceIndex(l.Index)
		}
		last = l.Index
	}
	f.applied.advance(last)
	return out
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.Snapshot()}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Restore(rc); err != nil {
		return err
	}
	f.applied.advance(f.store.Index())
	return nil
}

type fsmSnapshot struct{ snap *catalog.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// indexWaiter lets readers wait until the FSM has applied an index.
type indexWaiter struct {
	mu    sync.Mutex
	index uint64
	ch    chan struct{}
}

func newIndexWaiter() *indexWaiter { return &indexWaiter{ch: make(chan struct{})} }

func (w *indexWaiter) advance(i uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i > w.index {
		w.index = i
		close(w.ch)
		w.ch = make(chan struct{})
	}
}

// reached returns whether index i is applied, and if not a channel closed
// at the next advance.
func (w *indexWaiter) reached(i uint64) (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.index >= i, w.ch
}
