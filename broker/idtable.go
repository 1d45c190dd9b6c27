package broker

import (
	"encoding/binary"

	"wren/protocol"
)

// idTable finds in-flight messages by ID: open addressing with linear
// probing and backward-shift deletion, so the constant churn of a
// consumer (one insert per delivery, one delete per FIN) leaves no
// tombstones behind. Each slot keeps its message's hash, so a probe
// compares hashes and touches a message only on a match, and a deletion
// never hashes again. Go's map spent a quarter of the consume path's CPU
// on the same job. The zero value is empty; not safe for concurrent use.
type idTable struct {
	slots []idSlot // len is a power of two; a nil m is an empty slot
	n     int
}

type idSlot struct {
	hash uint64
	m    *message
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

// find returns the slot holding id, or the empty slot where it would go.
func (t *idTable) find(id *protocol.MessageID, h uint64) uint64 {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.m == nil || (s.hash == h && s.m.ID == *id) {
			return i
		}
	}
}

// get returns the message with id, or nil.
func (t *idTable) get(id protocol.MessageID) *message {
	if t.n == 0 {
		return nil
	}
	return t.slots[t.find(&id, hashID(&id))].m
}

// put adds m, replacing a message with the same ID.
func (t *idTable) put(m *message) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(len(t.slots)*2, minTableSlots))
	}
	h := hashID(&m.ID)
	s := &t.slots[t.find(&m.ID, h)]
	if s.m == nil {
		t.n++
	}
	*s = idSlot{hash: h, m: m}
}

// remove takes the message with id out and returns it, or nil.
func (t *idTable) remove(id protocol.MessageID) *message {
	if t.n == 0 {
		return nil
	}
	i := t.find(&id, hashID(&id))
	m := t.slots[i].m
	if m == nil {
		return nil
	}
	// Shift later members of the probe run back into the hole, so every
	// remaining message is still reachable from its home slot.
	mask := uint64(len(t.slots) - 1)
	for j := (i + 1) & mask; t.slots[j].m != nil; j = (j + 1) & mask {
		home := t.slots[j].hash & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = idSlot{}
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
	t.slots, t.n = make([]idSlot, size), 0
	for _, s := range old {
		if s.m != nil {
			t.put(s.m)
		}
	}
}
