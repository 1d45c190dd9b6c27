package broker

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// The block queue keeps FIFO order through any mix of pushes, pops,
// batch pops and drains, across block boundaries.
func TestMessageQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q messageQueue
	var ref []*message
	next := 0
	for step := 0; step < 100_000; step++ {
		switch op := rng.IntN(10); {
		case op < 5:
			for n := rng.IntN(600); n > 0; n-- {
				m := &message{due: int64(next)}
				next++
				q.push(m)
				ref = append(ref, m)
			}
		case op < 9:
			n := rng.IntN(700)
			got := q.popInto(nil, n)
			want := ref[:min(n, len(ref))]
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("step %d: popped message %d, want %d", step, got[i].due, want[i].due)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: popped %d, want %d", step, len(got), len(want))
			}
			ref = ref[len(want):]
		default:
			got := q.drain()
			if len(got) != len(ref) || (len(got) > 0 && got[0] != ref[0]) {
				t.Fatalf("step %d: drained %d, want %d", step, len(got), len(ref))
			}
			ref = nil
		}
		if q.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(ref))
		}
	}
}

// A queued message costs no more than in nsqd v1.3.0, whose *Message is
// 112 bytes: wren's is smaller, and its queue slot is one pointer.
func TestMessageSize(t *testing.T) {
	if size := unsafe.Sizeof(message{}); size > 96 {
		t.Fatalf("message is %d bytes, want at most 96", size)
	}
}
