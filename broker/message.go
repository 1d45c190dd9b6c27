package broker

import (
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

// messageQueue is a FIFO of messages kept in fixed-size blocks: pushing
// never copies what is queued (a ring that doubles copied every pointer,
// and held up to twice the room it needed), and a block is let go as soon
// as its last message is popped. Not safe for concurrent use.
type messageQueue struct {
	head, tail *queueBlock
	first      int // index of the next message to pop in head
	size       int
}

// queueBlockSize is how many messages one block holds: 2 KiB of pointers.
const queueBlockSize = 256

type queueBlock struct {
	msgs [queueBlockSize]*message
	n    int // slots filled
	next *queueBlock
}

func (q *messageQueue) len() int { return q.size }

func (q *messageQueue) push(m *message) {
	if q.tail == nil || q.tail.n == queueBlockSize {
		b := &queueBlock{}
		if q.tail == nil {
			q.head, q.first = b, 0
		} else {
			q.tail.next = b
		}
		q.tail = b
	}
	q.tail.msgs[q.tail.n] = m
	q.tail.n++
	q.size++
}

// peek returns the next message to pop, or nil.
func (q *messageQueue) peek() *message {
	if q.size == 0 {
		return nil
	}
	return q.head.msgs[q.first]
}

func (q *messageQueue) pop() *message {
	if q.size == 0 {
		return nil
	}
	b := q.head
	m := b.msgs[q.first]
	b.msgs[q.first] = nil
	q.first++
	q.size--
	if q.first == b.n && (b.n == queueBlockSize || q.size == 0) {
		// The block is used up: let it go (or, being the last one, reuse it).
		if b.next == nil {
			b.n, q.first = 0, 0
		} else {
			q.head, q.first = b.next, 0
		}
	}
	return m
}

// popInto appends up to n messages to dst.
func (q *messageQueue) popInto(dst []*message, n int) []*message {
	for ; n > 0 && q.size > 0; n-- {
		dst = append(dst, q.pop())
	}
	return dst
}

// drain removes and returns every message.
func (q *messageQueue) drain() []*message {
	out := make([]*message, 0, q.size)
	out = q.popInto(out, q.size)
	q.head, q.tail, q.first = nil, nil, 0
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
