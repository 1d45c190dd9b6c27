package broker

import (
	"math"
	"sync"

	"wren/protocol"
)

// message is a message inside the broker: the wire fields plus the state of
// its one delivery. Each channel holds its own copy; Body is shared.
//
// The delivery fields are owned by whoever holds the message: the channel's
// queues while it waits, then the client that has it in flight (under
// client.mu).
type message struct {
	protocol.Message

	deliveredAt int64    // Unix ns of the delivery now in flight
	deadline    int64    // Unix ns when the in-flight delivery times out
	prev, next  *message // in the client's in-flight list, by deadline

	due int64 // Unix ns when a deferred message becomes ready
}

func newMessage(id protocol.MessageID, ts int64, body []byte) *message {
	return &message{Message: protocol.Message{ID: id, Timestamp: ts, Body: body}}
}

// fromWire wraps messages read from a disk queue, with one allocation
// for the lot.
func fromWire(wire []protocol.Message) []*message {
	backing := make([]message, len(wire))
	out := make([]*message, len(wire))
	for i := range wire {
		backing[i] = message{Message: wire[i]}
		out[i] = &backing[i]
	}
	return out
}

// wireMessages is what a disk queue stores of msgs.
func wireMessages(msgs []*message) []protocol.Message {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]protocol.Message, len(msgs))
	for i, m := range msgs {
		out[i] = m.Message
	}
	return out
}

// wirePool holds the scratch a publish builds its messages in: only the
// messages that stay in memory get a message of their own, so a batch
// that goes to disk allocates none.
var wirePool = sync.Pool{New: func() any { return new([]protocol.Message) }}

func getWire(n int) *[]protocol.Message {
	w := wirePool.Get().(*[]protocol.Message)
	if cap(*w) < n {
		*w = make([]protocol.Message, n)
	}
	*w = (*w)[:n]
	return w
}

func putWire(w *[]protocol.Message) {
	clear(*w) // drop the references to the bodies
	wirePool.Put(w)
}

// newMessages makes messages of wire, due at due, with one allocation.
func newMessages(wire []protocol.Message, due int64) []message {
	backing := make([]message, len(wire))
	for i := range wire {
		backing[i] = message{Message: wire[i], due: due}
	}
	return backing
}

// packed is the messages of one publish as a queue holds them until they
// are delivered: the bodies copied into one buffer and a fixed-size entry
// per message. Neither holds a pointer, so the garbage collector has
// nothing to trace in a memory queue however long it grows, and a queued
// message costs its 32-byte entry and its body. Channels of the same topic
// share one. A message gets a *message only when it is popped.
type packed struct {
	bodies  []byte
	entries []packedEntry
}

type packedEntry struct {
	id        protocol.MessageID
	timestamp int64
	off, size uint32
}

// pack copies wire's messages (attempts 0, as published) into a packed.
func pack(wire []protocol.Message) *packed {
	size := 0
	for i := range wire {
		size += len(wire[i].Body)
	}
	p := &packed{bodies: make([]byte, 0, size), entries: make([]packedEntry, len(wire))}
	for i := range wire {
		m := &wire[i]
		p.entries[i] = packedEntry{id: m.ID, timestamp: m.Timestamp, off: uint32(len(p.bodies)), size: uint32(len(m.Body))}
		p.bodies = append(p.bodies, m.Body...)
	}
	return p
}

// lazyPack packs a publish the first time a channel keeps some of it in
// memory, so channels share one copy and a publish that goes wholly to
// disk makes none.
type lazyPack struct{ p *packed }

func (l *lazyPack) get(wire []protocol.Message) *packed {
	if l.p == nil {
		l.p = pack(wire)
	}
	return l.p
}

// queueRun is one queued message (m), or the entries [from, to) of a
// packed publish.
type queueRun struct {
	m        *message
	p        *packed
	from, to int
}

// messageQueue is a FIFO of messages kept as runs: a publish queued in
// memory is one run however many messages it has, and a requeued message
// is a run of its own. Not safe for concurrent use.
type messageQueue struct {
	runs []queueRun
	size int // messages
}

func (q *messageQueue) len() int { return q.size }

func (q *messageQueue) push(m *message) {
	q.runs = append(q.runs, queueRun{m: m})
	q.size++
}

// pushPacked queues entries [from, to) of p.
func (q *messageQueue) pushPacked(p *packed, from, to int) {
	if from >= to {
		return
	}
	q.runs = append(q.runs, queueRun{p: p, from: from, to: to})
	q.size += to - from
}

// headTimestamp is the publish time of the next message; ok is false when
// the queue is empty.
func (q *messageQueue) headTimestamp() (ts int64, ok bool) {
	if q.size == 0 {
		return 0, false
	}
	r := &q.runs[0]
	if r.m != nil {
		return r.m.Timestamp, true
	}
	return r.p.entries[r.from].timestamp, true
}

// popInto appends up to n messages to dst.
func (q *messageQueue) popInto(dst []*message, n int) []*message {
	return q.popUntil(dst, n, math.MaxInt64)
}

// popUntil appends up to n messages to dst, stopping at the first
// published after limit (Unix ns). The messages of a packed run are
// made in one allocation.
func (q *messageQueue) popUntil(dst []*message, n int, limit int64) []*message {
	for n > 0 && q.size > 0 {
		r := &q.runs[0]
		if r.m != nil {
			if r.m.Timestamp > limit {
				break
			}
			dst = append(dst, r.m)
			n--
			q.size--
			q.advance()
			continue
		}
		if r.p.entries[r.from].timestamp > limit {
			break // a publish's messages share one timestamp
		}
		k := min(n, r.to-r.from)
		backing := make([]message, k)
		for i := range backing {
			e := &r.p.entries[r.from+i]
			end := e.off + e.size
			backing[i].Message = protocol.Message{ID: e.id, Timestamp: e.timestamp, Body: r.p.bodies[e.off:end:end]}
			dst = append(dst, &backing[i])
		}
		r.from += k
		n -= k
		q.size -= k
		if r.from == r.to {
			q.advance()
		}
	}
	return dst
}

// advance drops the head run.
func (q *messageQueue) advance() {
	q.runs[0] = queueRun{}
	q.runs = q.runs[1:]
	if len(q.runs) == 0 {
		q.runs = q.runs[:0:0] // let the emptied array go
	}
}

// drain removes and returns every message.
func (q *messageQueue) drain() []*message {
	out := q.popInto(make([]*message, 0, q.size), q.size)
	q.runs, q.size = nil, 0
	return out
}

// deferredHeap orders deferred messages by due time. Not safe for
// concurrent use.
type deferredHeap []*message

func (h deferredHeap) Len() int           { return len(h) }
func (h deferredHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h deferredHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deferredHeap) Push(x any)        { *h = append(*h, x.(*message)) }
func (h *deferredHeap) Pop() any {
	old := *h
	n := len(old)
	m := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return m
}

// inFlight is one client's messages awaiting FIN, REQ or timeout: a map by
// ID and a list ordered by deadline. A client's deadlines are mostly
// appended in order (every delivery gets the same timeout), so insertion
// scans from the tail and is O(1) in practice, and the next timeout is
// always the head. Guarded by the owning client's mu.
type inFlight struct {
	byID       idTable
	head, tail *message
}

func (f *inFlight) len() int { return f.byID.len() }

// get returns the in-flight message with id, or nil.
func (f *inFlight) get(id protocol.MessageID) *message { return f.byID.get(id) }

func (f *inFlight) add(m *message) {
	f.byID.put(m)
	f.insertByDeadline(m)
}

func (f *inFlight) insertByDeadline(m *message) {
	at := f.tail
	for at != nil && at.deadline > m.deadline {
		at = at.prev
	}
	m.prev = at
	if at == nil {
		m.next = f.head
		f.head = m
	} else {
		m.next = at.next
		at.next = m
	}
	if m.next == nil {
		f.tail = m
	} else {
		m.next.prev = m
	}
}

func (f *inFlight) unlink(m *message) {
	if m.prev == nil {
		f.head = m.next
	} else {
		m.prev.next = m.next
	}
	if m.next == nil {
		f.tail = m.prev
	} else {
		m.next.prev = m.prev
	}
	m.prev, m.next = nil, nil
}

// remove takes the message with id out of flight; nil if it is not there.
func (f *inFlight) remove(id protocol.MessageID) *message {
	m := f.byID.remove(id)
	if m == nil {
		return nil
	}
	f.unlink(m)
	return m
}

// setDeadline moves m to its new place in the deadline order.
func (f *inFlight) setDeadline(m *message, deadline int64) {
	f.unlink(m)
	m.deadline = deadline
	f.insertByDeadline(m)
}

// expired removes and returns every message whose deadline is at or
// before now.
func (f *inFlight) expired(now int64, dst []*message) []*message {
	for f.head != nil && f.head.deadline <= now {
		m := f.head
		f.unlink(m)
		f.byID.remove(m.ID)
		dst = append(dst, m)
	}
	return dst
}

// removeAll empties the set and returns its messages.
func (f *inFlight) removeAll() []*message {
	out := make([]*message, 0, f.byID.len())
	for m := f.head; m != nil; {
		next := m.next
		m.prev, m.next = nil, nil
		out = append(out, m)
		m = next
	}
	f.byID.clear()
	f.head, f.tail = nil, nil
	return out
}

// nextDeadline is the earliest deadline, or 0 when nothing is in flight.
func (f *inFlight) nextDeadline() int64 {
	if f.head == nil {
		return 0
	}
	return f.head.deadline
}
