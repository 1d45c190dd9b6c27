package broker

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"wren/protocol"
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

// A queued message costs less than in nsqd v1.3.0, whose *Message is
// 112 bytes besides its body: wren queues a 32-byte entry, and makes a
// message (96 bytes) only for one it delivers.
func TestMessageSize(t *testing.T) {
	if size := unsafe.Sizeof(packedEntry{}); size > 32 {
		t.Fatalf("packed entry is %d bytes, want at most 32", size)
	}
	if size := unsafe.Sizeof(message{}); size > 96 {
		t.Fatalf("message is %d bytes, want at most 96", size)
	}
}

// Packed publishes and single messages keep one FIFO order, and popUntil
// stops at the first message published after its limit.
func TestMessageQueuePacked(t *testing.T) {
	wire := make([]protocol.Message, 5)
	for i := range wire {
		wire[i] = protocol.Message{ID: protocol.MessageID{byte('a' + i)}, Timestamp: 10, Body: []byte{byte('0' + i)}}
	}
	p := pack(wire)
	wire[0].Body[0] = 'x' // the queue holds a copy
	var q messageQueue
	q.pushPacked(p, 0, 3)
	single := &message{Message: protocol.Message{Timestamp: 20, Body: []byte("s")}}
	q.push(single)
	q.pushPacked(p, 3, 5)
	if q.len() != 6 {
		t.Fatalf("len %d, want 6", q.len())
	}
	if ts, ok := q.headTimestamp(); !ok || ts != 10 {
		t.Fatalf("headTimestamp = %d, %v; want 10, true", ts, ok)
	}
	got := q.popInto(nil, 2)
	if len(got) != 2 || string(got[0].Body) != "0" || got[1].ID[0] != 'b' || got[1].Timestamp != 10 {
		t.Fatalf("popped %+v", got)
	}
	got = q.popUntil(nil, 10, 15) // stops before the single message
	if len(got) != 1 || string(got[0].Body) != "2" {
		t.Fatalf("popUntil(15) = %d messages", len(got))
	}
	got = q.popUntil(nil, 10, 15)
	if len(got) != 0 {
		t.Fatalf("popUntil(15) past a later message = %d messages", len(got))
	}
	rest := q.drain()
	if len(rest) != 3 || rest[0] != single || string(rest[2].Body) != "4" || q.len() != 0 {
		t.Fatalf("drained %d messages, len %d", len(rest), q.len())
	}
	if cap(rest[1].Body) != 1 {
		t.Fatalf("a popped body's capacity runs into the next body: %d", cap(rest[1].Body))
	}
}
