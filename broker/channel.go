package broker

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"wren/diskqueue"
	"wren/internal/quantile"
	"wren/protocol"
)

var errExiting = errors.New("exiting")

// Channel is one subscription of a topic: every message published to the
// topic gets a copy here, delivered to one of the channel's clients.
//
// Messages wait in a memory queue of up to MemQueueSize entries, then in
// the disk queue; deferred ones in a heap ordered by due time, fired by one
// timer. In-flight messages belong to the client they were sent to.
//
// The disk queue hands out records of many messages. A client's pump that
// takes a record puts its messages in fromDisk, which every client of the
// channel serves, and takes the next only once fromDisk has run dry, so a
// backlog is read as it is delivered rather than all at once. Clients take
// the older of the two queues' next messages: memory fills before the disk
// does, but once memory has drained, the disk holds the older ones.
type Channel struct {
	topicName string
	name      string
	ephemeral bool
	cfg       *queueConfig
	logger    *slog.Logger

	mu       sync.Mutex
	memory   messageQueue
	fromDisk messageQueue // read from the disk queue, not yet delivered
	deferred deferredHeap
	timer    *time.Timer // fires at deferred[0].due
	timerAt  int64
	clients  map[int64]*client
	waiting  map[*client]struct{} // idle clients to wake on the next put
	nearby   []*client            // zone- and region-local clients (topology.go)
	exiting  bool
	deleted  bool
	backend  *diskqueue.Backlog
	journal  *deferJournal    // nil unless --durable
	inflight *inflightJournal // nil unless --durable
	paused   atomic.Bool

	messageCount  atomic.Uint64
	requeueCount  atomic.Uint64
	timeoutCount  atomic.Uint64
	inFlightCount atomic.Int64
	delivered     localityCounts // from memory, by the receiver's locality

	latency *quantile.Window // nil unless percentiles are configured

	hooks channelHooks
}

// channelHooks are how a channel reaches its topic.
type channelHooks struct {
	// onLastClient runs (without c.mu) when an ephemeral channel loses its
	// last client; the topic deletes the channel then.
	onLastClient func(*Channel)
	// onChange persists the metadata after a pause or unpause.
	onChange func()
}

func newChannel(topicName, name string, cfg *queueConfig, hooks channelHooks) *Channel {
	c := &Channel{
		topicName: topicName,
		name:      name,
		ephemeral: protocol.IsEphemeral(name),
		cfg:       cfg,
		logger:    cfg.logger.With("topic", topicName, "channel", name),
		clients:   make(map[int64]*client),
		waiting:   make(map[*client]struct{}),
		hooks:     hooks,
		latency:   cfg.latency.newWindow(),
	}
	c.backend = cfg.openBackend(topicName+":"+name, c.ephemeral)
	c.journal = openDeferJournal(cfg, topicName+":"+name, c.ephemeral)
	c.inflight = openInflightJournal(cfg, topicName+":"+name, c.ephemeral)
	c.restoreDeferred()
	c.restoreInflight()
	return c
}

func (c *Channel) backendName() string { return c.topicName + ":" + c.name }

// Name returns the channel's name.
func (c *Channel) Name() string { return c.name }

// put queues messages for delivery: in memory while there is room, then
// on disk (ephemeral channels drop the overflow). On a failed disk write
// it returns the messages it did not store, for the topic to retry.
// Deferred messages stay in memory; with --durable a failure to journal
// them is returned as err with nothing failed.
func (c *Channel) put(msgs []*message) (failed []*message, err error) {
	var overflow, deferred []*message
	c.mu.Lock()
	if c.exiting {
		c.mu.Unlock()
		return nil, errExiting
	}
	for _, m := range msgs {
		if m.due > 0 {
			c.pushDeferredLocked(m)
			if c.journal != nil {
				deferred = append(deferred, m.journalCopy())
			}
			continue
		}
		if int64(c.memory.len()) < c.cfg.memQueueSize {
			c.memory.push(m)
		} else {
			overflow = append(overflow, m)
		}
	}
	c.messageCount.Add(uint64(len(msgs)))
	c.wakeWaitersLocked()
	c.mu.Unlock()
	journalErr := c.journal.append(deferred)
	if err := c.writeToBackend(overflow); err != nil {
		failed = overflow[diskqueue.Written(err):]
		c.messageCount.Add(-uint64(len(failed)))
		return failed, errors.Join(journalErr, err)
	}
	return nil, journalErr
}

// putNew queues the messages of a publish, given as they go on the wire:
// those that fit in memory as entries of the publish's packed copy (made
// once for all channels, by shared), deferred ones as messages of their
// own, and the rest on disk as they are. wire is the caller's. kept says
// whether messages still refer to wire's bodies (deferred ones do). On a
// failed disk write, failed is the tail of wire the channel did not store.
func (c *Channel) putNew(wire []protocol.Message, due int64, shared *lazyPack) (kept bool, failed []protocol.Message, err error) {
	c.mu.Lock()
	if c.exiting {
		c.mu.Unlock()
		return false, nil, errExiting
	}
	inMemory := len(wire)
	var journaled []*message
	if due > 0 {
		backing := newMessages(wire, due)
		for i := range backing {
			c.pushDeferredLocked(&backing[i])
			if c.journal != nil {
				journaled = append(journaled, backing[i].journalCopy())
			}
		}
	} else {
		inMemory = roomFor(len(wire), c.cfg.memQueueSize, c.memory.len())
		if inMemory > 0 {
			c.memory.pushPacked(shared.get(wire), 0, inMemory)
		}
	}
	c.messageCount.Add(uint64(len(wire)))
	c.wakeWaitersLocked()
	c.mu.Unlock()
	if err := c.journal.append(journaled); err != nil {
		return true, nil, err
	}
	if err := c.writeWireToBackend(wire[inMemory:]); err != nil {
		failed = wire[inMemory+diskqueue.Written(err):]
		c.messageCount.Add(-uint64(len(failed)))
		return due > 0, failed, err
	}
	return due > 0, nil, nil
}

// requeue returns a message that was in flight: at once to the back of the
// queue, or after delay.
func (c *Channel) requeue(m *message, delay time.Duration) {
	if delay > 0 {
		m.due = time.Now().Add(delay).UnixNano()
	} else {
		m.due = 0
	}
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		return
	}
	if m.due > 0 {
		c.pushDeferredLocked(m)
		journaled := m.journalCopy()
		c.mu.Unlock()
		if c.journal.append([]*message{journaled}) == nil {
			c.inflight.done(m)
		}
		return
	}
	if int64(c.memory.len()) < c.cfg.memQueueSize || c.exiting {
		// While exiting the memory queue is flushed to disk after clients
		// are closed, so requeues from closing clients are kept in order.
		c.memory.push(m)
		c.wakeWaitersLocked()
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err := c.writeToBackend([]*message{m}); err != nil {
		c.logger.Error("requeue to disk failed; kept in memory", "id", string(m.ID[:]), "err", err)
		c.keepInMemory([]*message{m})
	} else {
		c.inflight.done(m)
	}
}

// keepInMemory queues msgs in memory past the limit: a disk write failed
// for messages the channel already held (requeued or deferred ones), which
// are bounded by the in-flight and deferred counts, so they are not lost.
func (c *Channel) keepInMemory(msgs []*message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return
	}
	for _, m := range msgs {
		c.memory.push(m)
	}
	c.wakeWaitersLocked()
}

// writeToBackend writes msgs to the disk queue as one batch.
func (c *Channel) writeToBackend(msgs []*message) error {
	return c.writeWireToBackend(wireMessages(msgs))
}

func (c *Channel) writeWireToBackend(wire []protocol.Message) error {
	if len(wire) == 0 {
		return nil
	}
	return c.backend.Put(wire)
}

// holdForClose takes back messages the topic was still retrying when the
// broker shuts down, so close writes them with the channel's own.
func (c *Channel) holdForClose(msgs []*message) { c.keepInMemory(msgs) }

// pushFromDisk queues the messages of a record a client's pump read from
// the disk queue, and wakes idle clients.
func (c *Channel) pushFromDisk(msgs []*message) {
	if len(msgs) == 0 {
		return
	}
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		return
	}
	for _, m := range msgs {
		c.fromDisk.push(m)
	}
	c.wakeWaitersLocked()
	c.mu.Unlock()
}

// c.mu must be held.
func (c *Channel) pushDeferredLocked(m *message) {
	heap.Push(&c.deferred, m)
	if c.deferred[0] == m {
		c.armTimerLocked()
	}
}

// c.mu must be held.
func (c *Channel) armTimerLocked() {
	if len(c.deferred) == 0 || c.exiting {
		return
	}
	due := c.deferred[0].due
	if c.timer != nil && c.timerAt != 0 && c.timerAt <= due {
		return
	}
	d := time.Duration(due - time.Now().UnixNano())
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.fireDeferred)
	} else {
		c.timer.Reset(d)
	}
	c.timerAt = due
}

// fireDeferred moves every due deferred message to the back of the queue.
func (c *Channel) fireDeferred() {
	now := time.Now().UnixNano()
	var overflow []*message
	c.mu.Lock()
	c.timerAt = 0
	if c.exiting {
		c.mu.Unlock()
		return
	}
	for len(c.deferred) > 0 && c.deferred[0].due <= now {
		m := heap.Pop(&c.deferred).(*message)
		m.due = 0
		if int64(c.memory.len()) < c.cfg.memQueueSize {
			c.memory.push(m)
		} else {
			overflow = append(overflow, m)
		}
	}
	c.armTimerLocked()
	c.wakeWaitersLocked()
	c.mu.Unlock()
	if err := c.writeToBackend(overflow); err != nil {
		// The journal keeps them too until a later compaction.
		c.logger.Error("deferred messages to disk failed; kept in memory", "err", err)
		c.keepInMemory(overflow[diskqueue.Written(err):])
	} else if err := c.journal.compact(c.deferredSnapshot, false); err != nil {
		c.logger.Error("rewriting the deferred journal", "err", err)
	}
}

// c.mu must be held.
func (c *Channel) wakeWaitersLocked() {
	if c.cfg.topologyAware {
		c.wakeNearestLocked()
		return
	}
	c.wakeAllWaitersLocked()
}

// c.mu must be held.
func (c *Channel) wakeAllWaitersLocked() {
	for cl := range c.waiting {
		cl.wakeUp()
	}
	clear(c.waiting)
}

// pop appends up to n messages to dst, the older of fromDisk's and
// memory's next message each time, and says whether fromDisk is left
// empty (time for the next disk record). When there are none it registers
// cl to be woken by the next put; so it does when cl defers to a nearer
// client (topology.go).
func (c *Channel) pop(dst []*message, n int, cl *client) (_ []*message, diskDry bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.memory.len() == 0 && c.fromDisk.len() == 0 {
		if !c.exiting {
			c.waiting[cl] = struct{}{}
		}
		return dst, true
	}
	if c.cfg.topologyAware && c.deferToNearerLocked(cl) {
		c.waiting[cl] = struct{}{}
		return dst, c.fromDisk.len() == 0
	}
	popped := 0 // from memory
	for n > 0 {
		dts, fromDisk := c.fromDisk.headTimestamp()
		mts, fromMemory := c.memory.headTimestamp()
		before := len(dst)
		switch {
		case !fromDisk && !fromMemory:
			c.delivered.add(cl.locality, popped)
			return dst, true
		case !fromMemory:
			dst = c.fromDisk.popInto(dst, n)
		case !fromDisk:
			dst = c.memory.popInto(dst, n)
			popped += len(dst) - before
		case dts <= mts:
			dst = c.fromDisk.popUntil(dst, n, mts)
		default:
			dst = c.memory.popUntil(dst, n, dts-1)
			popped += len(dst) - before
		}
		n -= len(dst) - before
	}
	c.delivered.add(cl.locality, popped)
	return dst, c.fromDisk.len() == 0
}

func (c *Channel) addClient(cl *client) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exiting {
		return errExiting
	}
	if _, ok := c.clients[cl.id]; ok {
		return nil
	}
	if max := c.cfg.maxChannelConsumers; max > 0 && len(c.clients) >= max {
		return fmt.Errorf("consumers for %s:%s exceeds limit of %d", c.topicName, c.name, max)
	}
	c.clients[cl.id] = cl
	c.addNearbyLocked(cl)
	return nil
}

func (c *Channel) removeClient(cl *client) {
	c.mu.Lock()
	if _, ok := c.clients[cl.id]; !ok {
		c.mu.Unlock()
		return
	}
	delete(c.clients, cl.id)
	delete(c.waiting, cl)
	c.removeNearbyLocked(cl)
	last := len(c.clients) == 0 && c.ephemeral && !c.exiting
	c.mu.Unlock()
	if last && c.hooks.onLastClient != nil {
		c.hooks.onLastClient(c)
	}
}

func (c *Channel) clientList() []*client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientsLocked()
}

// c.mu must be held.
func (c *Channel) clientsLocked() []*client {
	out := make([]*client, 0, len(c.clients))
	for _, cl := range c.clients {
		out = append(out, cl)
	}
	return out
}

// Pause stops delivery to the channel's clients; messages keep queuing.
// Like the topic's, the pause state is persisted at once.
func (c *Channel) Pause() {
	c.paused.Store(true)
	c.changed()
}

// Unpause resumes delivery.
func (c *Channel) Unpause() {
	c.paused.Store(false)
	for _, cl := range c.clientList() {
		cl.wakeUp()
	}
	c.changed()
}

func (c *Channel) changed() {
	if !c.ephemeral && c.hooks.onChange != nil {
		c.hooks.onChange()
	}
}

// IsPaused reports whether delivery is paused.
func (c *Channel) IsPaused() bool { return c.paused.Load() }

// Empty drops every queued, deferred and in-flight message.
func (c *Channel) Empty() error {
	c.mu.Lock()
	c.memory.drain()
	c.fromDisk.drain()
	c.deferred = nil
	clients := c.clientsLocked()
	c.mu.Unlock()
	for _, cl := range clients {
		cl.dropInFlight()
	}
	c.inflight.reset()
	return errors.Join(c.journal.compact(c.deferredSnapshot, true), c.backend.Empty())
}

// Depth is the number of messages waiting in memory and on disk, not
// counting in-flight and deferred ones.
func (c *Channel) Depth() int64 {
	c.mu.Lock()
	n := int64(c.memory.len() + c.fromDisk.len())
	c.mu.Unlock()
	return n + c.backend.Depth()
}

func (c *Channel) deferredCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.deferred)
}

// delete closes the channel's clients and removes its data.
func (c *Channel) delete() {
	c.mu.Lock()
	c.exiting, c.deleted = true, true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.memory.drain()
	c.fromDisk.drain()
	c.deferred = nil
	clients := c.clientsLocked()
	c.mu.Unlock()
	for _, cl := range clients {
		cl.close(closeChannelDeleted, nil)
	}
	if err := c.backend.Delete(); err != nil {
		c.logger.Error("deleting channel data", "err", err)
	}
	removeDeferredFile(c.cfg.dataPath, c.backendName())
	c.journal.remove()
	c.inflight.reset()
}

// beginExit stops the deferred timer and refuses new clients; messages may
// still be requeued by closing clients until close.
func (c *Channel) beginExit() {
	c.mu.Lock()
	c.exiting = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
}

// close writes the messages read from disk but not delivered, then the
// memory-queued ones, back to disk, and deferred ones, with their due
// times, to the deferred file, then syncs and closes the disk queue.
// Clients must be gone.
func (c *Channel) close() error {
	c.beginExit()
	c.mu.Lock()
	msgs := append(c.fromDisk.drain(), c.memory.drain()...)
	deferred := []*message(c.deferred)
	c.deferred = nil
	c.mu.Unlock()
	var errs []error
	if !c.ephemeral {
		backErr := c.writeToBackend(msgs)
		if backErr == nil {
			c.inflight.reset() // every message taken off disk is back on it
		}
		errs = append(errs, backErr)
		err := writeDeferredFile(c.cfg.dataPath, c.backendName(), deferred)
		if err == nil {
			c.journal.remove() // the deferred file holds them now
		}
		errs = append(errs, err)
	}
	errs = append(errs, c.backend.Close())
	return errors.Join(errs...)
}

// restoreDeferred loads the deferred file a clean shutdown left, keeping
// each message's due time.
func (c *Channel) restoreDeferred() {
	if c.ephemeral {
		return
	}
	msgs, err := readDeferredAndJournal(c.cfg.dataPath, c.backendName(), c.journal)
	if err != nil {
		c.logger.Error("reading deferred messages", "err", err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	c.mu.Lock()
	for _, m := range msgs {
		c.pushDeferredLocked(m)
	}
	c.mu.Unlock()
	removeDeferredFile(c.cfg.dataPath, c.backendName())
	c.logger.Info("restored deferred messages", "count", len(msgs))
}
