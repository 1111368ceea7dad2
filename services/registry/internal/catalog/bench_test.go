package catalog

import (
	"fmt"
	"testing"
)

// BenchmarkApplyRegister is the state machine's share of one registration,
// paid on every node.
func BenchmarkApplyRegister(b *testing.B) {
	s := NewStore(0)
	cmds := make([][]byte, 1024)
	for i := range cmds {
		in := inst("orders", fmt.Sprintf("o-%d", i))
		in.Tags = []string{"v1", "canary"}
		in.Metadata = map[string]string{"version": "1.2.3"}
		cmds[i] = mustEncode(b, Register{Instance: in, Now: t0})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if res := s.Apply(uint64(i+1), cmds[i%len(cmds)]); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

func BenchmarkWatchFrom(b *testing.B) {
	s := NewStore(0)
	for i := range 4096 {
		s.Apply(uint64(i+1), mustEncode(b, Register{Instance: inst("orders", fmt.Sprintf("o-%d", i)), Now: t0}))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if bt := s.WatchFrom(uint64(4096-64+i%32), 1024); bt.Reset {
			b.Fatal("reset")
		}
	}
}
