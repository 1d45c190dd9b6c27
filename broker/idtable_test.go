package broker

import (
	"math/rand/v2"
	"testing"

	"wren/protocol"
)

// The table agrees with a map through random inserts, replacements and
// removals, including removals that shift probe runs across the wrap.
func TestIDTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := protocol.NewIDGenerator(7)
	var ids []protocol.MessageID
	for i := 0; i < 3000; i++ {
		ids = append(ids, gen.Next(int64(1_700_000_000_000_000_000)+int64(i/100)<<20))
	}
	var table idTable
	ref := map[protocol.MessageID]*message{}
	for step := 0; step < 200_000; step++ {
		id := ids[rng.IntN(len(ids))]
		switch rng.IntN(3) {
		case 0, 1:
			m := &message{Message: protocol.Message{ID: id}}
			table.put(m)
			ref[id] = m
		default:
			if got, want := table.remove(id), ref[id]; got != want {
				t.Fatalf("step %d: remove = %p, want %p", step, got, want)
			}
			delete(ref, id)
		}
		if table.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, table.len(), len(ref))
		}
		if step%1000 == 0 {
			for _, id := range ids {
				if got, want := table.get(id), ref[id]; got != want {
					t.Fatalf("step %d: get = %p, want %p", step, got, want)
				}
			}
		}
	}
	for id := range ref {
		table.remove(id)
	}
	if table.len() != 0 || table.slots != nil {
		t.Fatalf("emptied table keeps %d messages, %d slots", table.len(), len(table.slots))
	}
}

func BenchmarkIDTableChurn(b *testing.B) {
	gen := protocol.NewIDGenerator(1)
	const window = 2500
	msgs := make([]*message, 1<<16)
	for i := range msgs {
		msgs[i] = &message{Message: protocol.Message{ID: gen.Next(int64(i) << 12)}}
	}
	var table idTable
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		table.put(msgs[i&(len(msgs)-1)])
		if i >= window {
			table.remove(msgs[(i-window)&(len(msgs)-1)].ID)
		}
		i++
	}
}
