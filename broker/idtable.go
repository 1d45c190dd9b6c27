package broker

import (
	"encoding/binary"

	"wren/protocol"
)

// idTable finds in-flight messages by ID: open addressing with linear
// probing and backward-shift deletion, so the constant churn of a
// consumer (one insert per delivery, one delete per FIN) leaves no
// tombstones behind. Go's map spent a quarter of the consume path's CPU
// on the same job. The zero value is empty; not safe for concurrent use.
type idTable struct {
	slots []*message // len is a power of two; nil is an empty slot
	n     int
}

// minTableSlots is the smallest table allocated; an empty table holds
// nothing at all, so idle connections cost no slots.
const minTableSlots = 16

// hashID mixes the ID's two halves. NSQ-shaped IDs are hex text whose
// last characters change fastest; the mix spreads them over every bit.
func hashID(id *protocol.MessageID) uint64 {
	h := binary.LittleEndian.Uint64(id[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(id[8:])
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>29
}

func (t *idTable) len() int { return t.n }

// get returns the message with id, or nil.
func (t *idTable) get(id protocol.MessageID) *message {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := hashID(&id) & mask; ; i = (i + 1) & mask {
		m := t.slots[i]
		if m == nil || m.ID == id {
			return m
		}
	}
}

// put adds m, replacing a message with the same ID.
func (t *idTable) put(m *message) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(len(t.slots)*2, minTableSlots))
	}
	mask := uint64(len(t.slots) - 1)
	for i := hashID(&m.ID) & mask; ; i = (i + 1) & mask {
		switch cur := t.slots[i]; {
		case cur == nil:
			t.slots[i] = m
			t.n++
			return
		case cur.ID == m.ID:
			t.slots[i] = m
			return
		}
	}
}

// remove takes the message with id out and returns it, or nil.
func (t *idTable) remove(id protocol.MessageID) *message {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	i := hashID(&id) & mask
	for t.slots[i] == nil || t.slots[i].ID != id {
		if t.slots[i] == nil {
			return nil
		}
		i = (i + 1) & mask
	}
	m := t.slots[i]
	// Shift later members of the probe run back into the hole, so every
	// remaining message is still reachable from its home slot.
	for j := (i + 1) & mask; t.slots[j] != nil; j = (j + 1) & mask {
		home := hashID(&t.slots[j].ID) & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = nil
	t.n--
	if t.n == 0 && len(t.slots) > minTableSlots {
		t.slots = nil // release a large table once the client has nothing in flight
	}
	return m
}

// clear forgets every message.
func (t *idTable) clear() { t.slots, t.n = nil, 0 }

func (t *idTable) resize(size int) {
	old := t.slots
	t.slots, t.n = make([]*message, size), 0
	for _, m := range old {
		if m != nil {
			t.put(m)
		}
	}
}
