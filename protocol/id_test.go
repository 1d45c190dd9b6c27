package protocol_test

import (
	"strconv"
	"testing"

	"wren/protocol"
)

// nsqEpoch is NSQ's ID epoch in units of 2^20 ns.
const nsqEpoch = 1288834974288

// now is a fixed publish time so the tests do not depend on the clock.
const now = int64(1_700_000_000_123_456_789)

func idValue(t *testing.T, id protocol.MessageID) uint64 {
	t.Helper()
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			t.Fatalf("ID %q has %q, want lowercase hex only", id[:], c)
		}
	}
	v, err := strconv.ParseUint(string(id[:]), 16, 64)
	if err != nil {
		t.Fatalf("ID %q: %v", id[:], err)
	}
	return v
}

func TestIDLayout(t *testing.T) {
	tests := []struct {
		name   string
		nodeID int64
	}{
		{"node 0", 0},
		{"node 5", 5},
		{"node 1023", 1023},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := protocol.NewIDGenerator(tc.nodeID)
			for seq := uint64(0); seq < 3; seq++ {
				v := idValue(t, g.Next(now))
				if got, want := v>>22, uint64(now>>20-nsqEpoch); got != want {
					t.Errorf("timestamp bits = %d, want %d", got, want)
				}
				if got := int64(v >> 12 & 0x3ff); got != tc.nodeID {
					t.Errorf("node bits = %d, want %d", got, tc.nodeID)
				}
				if got := v & 0xfff; got != seq {
					t.Errorf("sequence bits = %d, want %d", got, seq)
				}
			}
		})
	}
}

// The same nanosecond for every ID is the worst burst: the 12-bit sequence
// overflows 24 times and each overflow must borrow the next tick.
func TestIDsIncreaseWithinOneTimestamp(t *testing.T) {
	const n = 100_000
	g := protocol.NewIDGenerator(7)
	seen := make(map[protocol.MessageID]bool, n)
	var prev protocol.MessageID
	for i := 0; i < n; i++ {
		id := g.Next(now)
		if seen[id] {
			t.Fatalf("ID %d, %s, repeats", i, id[:])
		}
		seen[id] = true
		// Fixed-width lowercase hex orders like the number it encodes.
		if i > 0 && string(id[:]) <= string(prev[:]) {
			t.Fatalf("ID %d, %s, not above %s", i, id[:], prev[:])
		}
		prev = id
	}
	last := idValue(t, prev)
	if got := int64(last >> 12 & 0x3ff); got != 7 {
		t.Errorf("node bits of the last ID = %d, want 7", got)
	}
	if got, want := int64(last>>22), now>>20-nsqEpoch+(n-1)/4096; got != want {
		t.Errorf("tick of the last ID = %d, want %d (borrowed ticks)", got, want)
	}
}

func TestIDSequenceOverflowBorrowsNextTick(t *testing.T) {
	g := protocol.NewIDGenerator(1)
	tick := uint64(now>>20 - nsqEpoch)
	var v uint64
	for i := 0; i < 4096; i++ {
		v = idValue(t, g.Next(now))
	}
	if v>>22 != tick || v&0xfff != 4095 {
		t.Fatalf("4096th ID: tick %d seq %d, want tick %d seq 4095", v>>22, v&0xfff, tick)
	}
	v = idValue(t, g.Next(now))
	if v>>22 != tick+1 || v&0xfff != 0 {
		t.Fatalf("4097th ID: tick %d seq %d, want tick %d seq 0", v>>22, v&0xfff, tick+1)
	}
	// When the clock reaches the borrowed tick the sequence carries on.
	next := idValue(t, g.Next(now+1<<20))
	if next <= v || next>>22 != tick+1 || next&0xfff != 1 {
		t.Fatalf("ID at the borrowed tick: tick %d seq %d after %x", next>>22, next&0xfff, v)
	}
	// A later tick starts a new sequence.
	later := idValue(t, g.Next(now+5<<20))
	if later>>22 != tick+5 || later&0xfff != 0 {
		t.Fatalf("ID at a later tick: tick %d seq %d", later>>22, later&0xfff)
	}
}

func TestIDsIncreaseWhenClockGoesBack(t *testing.T) {
	g := protocol.NewIDGenerator(2)
	a := idValue(t, g.Next(now))
	b := idValue(t, g.Next(now-10<<20))
	if b <= a {
		t.Errorf("ID after the clock went back = %x, not above %x", b, a)
	}
}
