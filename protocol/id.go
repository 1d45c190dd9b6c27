package protocol

import "encoding/hex"

// idEpoch is NSQ's custom epoch, in units of 2^20 ns (about a millisecond).
const idEpoch = 1288834974288

// MaxNodeID bounds --node-id: it fills 10 bits of an ID.
const MaxNodeID = 1024

// IDGenerator makes message IDs shaped like NSQ's:
// ((UnixNano>>20) - epoch) << 22 | nodeID << 12 | sequence (12 bits).
//
// When more than 4096 IDs are asked for within one tick the generator borrows
// the next tick instead of waiting for the clock, so IDs stay unique and
// increasing and a burst of publishes never sleeps; the clock catches up as
// soon as the burst ends. An IDGenerator is not safe for concurrent use.
type IDGenerator struct {
	nodeID   int64
	lastTick int64
	sequence int64
}

// NewIDGenerator returns a generator for the node; nodeID must be in [0, 1024).
func NewIDGenerator(nodeID int64) *IDGenerator {
	return &IDGenerator{nodeID: nodeID & (MaxNodeID - 1), lastTick: -1}
}

// Next returns the ID for a message published at nowNano (Unix nanoseconds).
func (g *IDGenerator) Next(nowNano int64) MessageID {
	tick := nowNano>>20 - idEpoch
	if tick > g.lastTick {
		g.lastTick = tick
		g.sequence = 0
	} else {
		g.sequence++
		if g.sequence >= 1<<12 {
			g.lastTick++
			g.sequence = 0
		}
	}
	v := g.lastTick<<22 | g.nodeID<<12 | g.sequence
	var raw [8]byte
	for i := 7; i >= 0; i-- {
		raw[i] = byte(v)
		v >>= 8
	}
	var id MessageID
	hex.Encode(id[:], raw[:])
	return id
}
