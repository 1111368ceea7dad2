package raftnode

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A follower that truncates a conflicting log suffix after a leader change
// must still open its log on the next start (raft-wal v0.4.0 panicked here:
// "sealed segment has no index block").
func TestLogReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	w, meta, err := openLog(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d", i)})
	}
	if err := w.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(18, 20); err != nil { // what raft does to a conflicting suffix
		t.Fatal(err)
	}
	if err := w.StoreLogs([]*raft.Log{{Index: 18, Term: 2, Type: raft.LogCommand, Data: []byte("new leader")}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := meta.Close(); err != nil {
		t.Fatal(err)
	}

	w, meta, err = openLog(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("reopen after tail truncation: %v", err)
	}
	defer meta.Close()
	defer w.Close()
	for _, idx := range []uint64{1, 17, 18} {
		var l raft.Log
		if err := w.GetLog(idx, &l); err != nil {
			t.Fatalf("entry %d after reopen: %v", idx, err)
		}
		if idx == 18 && (l.Term != 2 || string(l.Data) != "new leader") {
			t.Fatalf("entry 18 = term %d %q, want the new leader's", l.Term, l.Data)
		}
	}
	if last, _ := w.LastIndex(); last != 18 {
		t.Fatalf("last index %d after reopen, want 18", last)
	}
}
