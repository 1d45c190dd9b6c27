package broker

import (
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"wren/diskqueue"
	"wren/protocol"
)

// Topic receives published messages and copies each to every channel.
//
// Publishing takes the topic's read lock and hands the messages straight to
// the channels: no goroutine hop and no global lock. Only while the topic
// has no channels, is paused, or still has a backlog do messages queue at
// the topic (memory, then disk); a pump goroutine drains that backlog into
// the channels once they can take it.
type Topic struct {
	name      string
	ephemeral bool
	cfg       *queueConfig
	logger    *slog.Logger

	mu          sync.RWMutex
	channels    map[string]*Channel
	channelList []*Channel // the same channels, for fan-out without map iteration
	paused      bool
	// holdForInit keeps messages at the topic while a new topic learns
	// its channels from the lookups, so every channel gets them.
	holdForInit bool
	memory      messageQueue // backlog while no channel can take messages
	backend     *diskqueue.Backlog
	journal     *deferJournal    // nil unless --durable
	inflight    *inflightJournal // nil unless --durable
	exiting     bool

	idMu sync.Mutex
	ids  *protocol.IDGenerator

	messageCount atomic.Uint64
	messageBytes atomic.Uint64

	// Copies a channel could not store yet, retried by the pump (retry.go).
	retryMu   sync.Mutex
	retry     []heldCopies
	retryHeld atomic.Int64 // messages in retry

	wake     chan struct{}
	exit     chan struct{}
	pumpDone chan struct{}

	// hooks into the broker: metadata persistence and ephemeral deletion.
	onChange func()
	onEmpty  func(*Topic)
}

func newTopic(name string, cfg *queueConfig, onChange func(), onEmpty func(*Topic)) *Topic {
	t := &Topic{
		name:      name,
		ephemeral: protocol.IsEphemeral(name),
		cfg:       cfg,
		logger:    cfg.logger.With("topic", name),
		channels:  make(map[string]*Channel),
		ids:       protocol.NewIDGenerator(cfg.nodeID),
		wake:      make(chan struct{}, 1),
		exit:      make(chan struct{}),
		pumpDone:  make(chan struct{}),
		onChange:  onChange,
		onEmpty:   onEmpty,
	}
	t.backend = cfg.openBackend(name, t.ephemeral)
	t.journal = openDeferJournal(cfg, name, t.ephemeral)
	t.inflight = openInflightJournal(cfg, name, t.ephemeral)
	t.restoreDeferred()
	t.restoreInflight()
	go t.pump()
	return t
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Publish queues bodies as new messages, deferred by delay when it is
// positive. It returns once every message is queued on every channel (or at
// the topic), so an OK to the publisher means the broker holds them.
func (t *Topic) Publish(bodies [][]byte, delay time.Duration) error {
	_, err := t.publish(bodies, delay)
	return err
}

// publish is Publish, also saying whether any message kept a reference
// to the bodies (a deferred one; memory queues keep a packed copy and
// disk queues their own), so a caller may otherwise reuse their buffer.
func (t *Topic) publish(bodies [][]byte, delay time.Duration) (kept bool, err error) {
	now := time.Now().UnixNano()
	var due int64
	if delay > 0 {
		due = now + int64(delay)
	}
	scratch := getWire(len(bodies))
	defer putWire(scratch)
	wire := *scratch
	var size uint64
	t.idMu.Lock()
	for i, body := range bodies {
		wire[i] = protocol.Message{ID: t.ids.Next(now), Timestamp: now, Body: body}
		size += uint64(len(body))
	}
	t.idMu.Unlock()

	t.mu.RLock()
	if t.exiting {
		t.mu.RUnlock()
		return false, errExiting
	}
	if !t.paused && !t.holdForInit && len(t.channelList) > 0 && t.memory.len() == 0 && t.backend.Depth() == 0 && t.retryHeld.Load() == 0 {
		kept, err := t.fanOutNewLocked(wire, due)
		t.mu.RUnlock()
		if err == nil {
			t.messageCount.Add(uint64(len(wire)))
			t.messageBytes.Add(size)
		}
		return kept, err
	}
	t.mu.RUnlock()

	t.mu.Lock()
	if t.exiting {
		t.mu.Unlock()
		return false, errExiting
	}
	// Deferred messages stay in memory so their delay is never lost.
	inMemory := len(wire)
	var journaled []*message
	if due > 0 {
		backing := newMessages(wire, due)
		for i := range backing {
			t.memory.push(&backing[i])
			if t.journal != nil {
				journaled = append(journaled, backing[i].journalCopy())
			}
		}
	} else {
		inMemory = roomFor(len(wire), t.cfg.memQueueSize, t.memory.len())
		if inMemory > 0 {
			t.memory.pushPacked(pack(wire[:inMemory]), 0, inMemory)
		}
	}
	t.mu.Unlock()
	t.wakePump()
	if err := t.journal.append(journaled); err != nil {
		return true, err
	}
	if err := t.backend.Put(wire[inMemory:]); err != nil {
		stored := inMemory + diskqueue.Written(err)
		if stored == 0 || t.cfg.durable {
			// With --durable nothing is acknowledged that is not fsynced:
			// the publisher retries, and what was stored may come twice.
			return due > 0, err
		}
		// Part of the publish is queued, so it is acknowledged (a retry
		// would duplicate that part); the rest waits in memory, past the
		// limit by at most this one publish.
		t.mu.Lock()
		t.memory.pushPacked(pack(wire[stored:]), 0, len(wire)-stored)
		t.mu.Unlock()
		t.logger.Error("disk queue failed partway through a publish; kept the rest in memory",
			"messages", len(wire)-stored, "err", err)
	}
	t.messageCount.Add(uint64(len(wire)))
	t.messageBytes.Add(size)
	return due > 0, nil
}

// roomFor is how many of n messages fit in a memory queue of size limit
// that holds queued already.
func roomFor(n int, limit int64, queued int) int {
	return int(min(max(limit-int64(queued), 0), int64(n)))
}

// fanOutNewLocked gives each channel the messages of a publish. A channel
// that fails to store some gets them retried from the topic, and the
// publish succeeds, unless no channel stored any (retry.go). t.mu must be
// held (read or write).
func (t *Topic) fanOutNewLocked(wire []protocol.Message, due int64) (kept bool, err error) {
	var shared lazyPack
	var failures []failedCopy // allocated only when a channel fails
	stored := false
	for _, ch := range t.channelList {
		chKept, failed, err := ch.putNew(wire, due, &shared)
		kept = kept || chKept
		if errors.Is(err, errExiting) {
			continue
		}
		if err != nil {
			failures = append(failures, failedCopy{ch: ch, wire: failed, err: err})
		}
		stored = stored || len(failed) < len(wire)
	}
	if len(failures) == 0 {
		return kept, nil
	}
	if !stored || t.cfg.durable {
		// With --durable a copy held in memory for a retry would be
		// acknowledged unsynced: the publish fails instead, and the
		// channels that stored it may get it twice.
		errs := make([]error, len(failures))
		for i, f := range failures {
			errs[i] = f.err
		}
		return kept, errors.Join(errs...)
	}
	for _, f := range failures {
		t.holdForRetry(f.ch, copyMessages(f.wire), f.err)
	}
	return kept, nil
}

// failedCopy is the part of a publish one channel did not store.
type failedCopy struct {
	ch   *Channel
	wire []protocol.Message
	err  error
}

// fanOutLocked gives each channel its own copy of msgs from the topic's
// backlog; the first channel takes the originals. Copies a channel cannot
// store stay at the topic to be retried (retry.go); stored says none had
// to. t.mu must be held (read or write).
func (t *Topic) fanOutLocked(msgs []*message) (stored bool) {
	stored = true
	for i, ch := range t.channelList {
		batch := msgs
		if i < len(t.channelList)-1 {
			batch = make([]*message, len(msgs))
			copies := make([]message, len(msgs))
			for j, m := range msgs {
				copies[j] = message{Message: m.Message, due: m.due}
				batch[j] = &copies[j]
			}
		}
		if failed, err := ch.put(batch); len(failed) > 0 {
			t.holdForRetry(ch, failed, err)
			stored = false
		}
	}
	return stored
}

func (t *Topic) wakePump() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// pump drains the topic's backlog, memory first, into its channels
// whenever there are channels and the topic is not paused. Disk records
// are waited for in the same select as wake-ups, so the pump never needs
// to know the disk depth.
func (t *Topic) pump() {
	defer close(t.pumpDone)
	batch := make([]*message, 0, 256)
	backoff := minRetryBackoff
	for {
		if t.retryHeld.Load() > 0 {
			if t.retryHeldCopies() {
				retry := time.NewTimer(backoff)
				select {
				case <-retry.C:
				case <-t.exit:
					retry.Stop()
					return
				}
				backoff = min(2*backoff, maxRetryBackoff)
				continue
			}
			backoff = minRetryBackoff
		}
		t.mu.Lock()
		flowing := !t.paused && !t.holdForInit && len(t.channelList) > 0 && !t.exiting
		if flowing {
			batch = t.memory.popInto(batch[:0], cap(batch))
			if len(batch) > 0 {
				stored := t.fanOutLocked(batch)
				t.mu.Unlock()
				if stored {
					t.journal.removeIf(t.memoryEmpty)
				}
				continue
			}
		}
		t.mu.Unlock()

		var diskC <-chan []byte
		if flowing {
			diskC = t.backend.ReadChan()
		}
		select {
		case rec := <-diskC:
			scratch := getWire(0)
			*scratch = t.backend.Take(rec, *scratch)
			msgs := fromWire(*scratch)
			putWire(scratch)
			if len(msgs) == 0 {
				continue
			}
			if err := t.inflight.add(msgs); err != nil {
				t.logger.Error("journaling messages moving to channels", "err", err)
			}
			t.mu.RLock()
			stored := t.fanOutLocked(msgs)
			t.mu.RUnlock()
			if stored {
				// Copies held for a retry keep their journal entries
				// until close: after a crash they come back, perhaps twice.
				t.inflight.done(msgs...)
			}
		case <-t.wake:
		case <-t.exit:
			return
		}
	}
}

// Channel returns the named channel, creating it if needed.
func (t *Topic) Channel(name string) (*Channel, error) {
	t.mu.RLock()
	ch, ok := t.channels[name]
	exiting := t.exiting
	t.mu.RUnlock()
	if ok {
		return ch, nil
	}
	if exiting {
		return nil, errExiting
	}
	t.mu.Lock()
	if t.exiting {
		t.mu.Unlock()
		return nil, errExiting
	}
	ch, ok = t.channels[name]
	if !ok {
		ch = newChannel(t.name, name, t.cfg, t.channelHooks())
		t.channels[name] = ch
		t.channelList = append(t.channelList, ch)
		t.logger.Info("new channel", "channel", name)
	}
	t.mu.Unlock()
	if !ok {
		t.wakePump()
		if !ch.ephemeral {
			t.onChange()
		}
		if t.cfg.lookupNotify != nil {
			t.cfg.lookupNotify(lookupEvent{register: true, topic: t.name, channel: name})
		}
	}
	return ch, nil
}

// ExistingChannel returns the named channel or nil.
func (t *Topic) ExistingChannel(name string) *Channel {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.channels[name]
}

// Channels returns the topic's channels sorted by name.
func (t *Topic) Channels() []*Channel {
	t.mu.RLock()
	out := append([]*Channel(nil), t.channelList...)
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// DeleteChannel removes a channel, closing its clients and its data.
func (t *Topic) DeleteChannel(name string) bool {
	return t.deleteChannel(name, false)
}

// deleteChannel deletes the named channel if it exists and, with
// onlyIfIdle, has no clients. The check and the removal happen under
// the topic's and the channel's locks, and the channel is marked exiting
// there, so a SUB racing with an ephemeral channel's last client either
// joins before the check (and the channel stays) or is refused and
// retries on a fresh channel.
func (t *Topic) deleteChannel(name string, onlyIfIdle bool) bool {
	t.mu.Lock()
	ch, ok := t.channels[name]
	if !ok {
		t.mu.Unlock()
		return false
	}
	if onlyIfIdle {
		ch.mu.Lock()
		idle := len(ch.clients) == 0
		if idle {
			ch.exiting = true
		}
		ch.mu.Unlock()
		if !idle {
			t.mu.Unlock()
			return false
		}
	}
	delete(t.channels, name)
	for i, c := range t.channelList {
		if c == ch {
			t.channelList = append(t.channelList[:i:i], t.channelList[i+1:]...)
			break
		}
	}
	empty := len(t.channelList) == 0
	if empty && t.ephemeral {
		// Refuse new channels now, under the same lock, so the topic's
		// deletion cannot race a SUB into a topic about to go.
		t.exiting = true
	}
	t.mu.Unlock()
	ch.delete()
	t.logger.Info("deleted channel", "channel", name)
	if t.cfg.lookupNotify != nil {
		t.cfg.lookupNotify(lookupEvent{topic: t.name, channel: name})
	}
	if !ch.ephemeral {
		t.onChange()
	}
	if empty && t.ephemeral {
		t.onEmpty(t)
	}
	return true
}

func (t *Topic) channelHooks() channelHooks {
	return channelHooks{onLastClient: t.removeEphemeralChannel, onChange: t.onChange}
}

func (t *Topic) removeEphemeralChannel(ch *Channel) {
	t.deleteChannel(ch.name, true)
}

// releaseInit lets messages held during initialisation flow.
func (t *Topic) releaseInit() {
	t.mu.Lock()
	t.holdForInit = false
	t.mu.Unlock()
	t.wakePump()
}

// Pause holds messages at the topic; Unpause lets them flow again.
func (t *Topic) Pause() { t.setPaused(true) }

// Unpause resumes the flow to channels.
func (t *Topic) Unpause() { t.setPaused(false) }

func (t *Topic) setPaused(p bool) {
	t.mu.Lock()
	t.paused = p
	t.mu.Unlock()
	if !p {
		t.wakePump()
	}
	t.onChange()
}

// isExiting reports whether the topic is being deleted or shut down.
func (t *Topic) isExiting() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.exiting
}

// IsPaused reports whether the topic holds its messages.
func (t *Topic) IsPaused() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.paused
}

// Empty drops the messages queued at the topic (not those in channels).
func (t *Topic) Empty() error {
	t.mu.Lock()
	t.memory.drain()
	t.mu.Unlock()
	t.journal.removeIf(t.memoryEmpty)
	t.inflight.reset()
	return t.backend.Empty()
}

// Depth is the topic's own backlog, in memory and on disk, and the copies
// it holds for channels that could not store them yet.
func (t *Topic) Depth() int64 {
	t.mu.RLock()
	n := int64(t.memory.len())
	t.mu.RUnlock()
	return n + t.backend.Depth() + t.retryHeld.Load()
}

func (t *Topic) stopPump() {
	t.mu.Lock()
	t.exiting = true
	t.mu.Unlock()
	select {
	case <-t.exit:
	default:
		close(t.exit)
	}
	<-t.pumpDone
}

// delete closes every channel's clients and removes all of the topic's data.
func (t *Topic) delete() {
	t.stopPump()
	t.mu.Lock()
	chans := t.channelList
	t.channels, t.channelList = map[string]*Channel{}, nil
	t.memory.drain()
	t.mu.Unlock()
	t.takeHeldCopies()
	for _, ch := range chans {
		ch.delete()
	}
	if err := t.backend.Delete(); err != nil {
		t.logger.Error("deleting topic data", "err", err)
	}
	removeDeferredFile(t.cfg.dataPath, t.name)
	t.journal.remove()
	t.inflight.reset()
}

// beginExit refuses new publishes and channels and stops the pump.
func (t *Topic) beginExit() []*Channel {
	t.stopPump()
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, ch := range t.channelList {
		ch.beginExit()
	}
	return append([]*Channel(nil), t.channelList...)
}

// close persists the backlog and every channel. Clients must be gone.
func (t *Topic) close() error {
	chans := t.beginExit()
	// The pump has stopped: copies still held go to their channels' disk
	// queues with the channels' own messages.
	for _, h := range t.takeHeldCopies() {
		h.ch.holdForClose(h.msgs)
	}
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.close())
	}
	t.mu.Lock()
	msgs := t.memory.drain()
	t.mu.Unlock()
	if !t.ephemeral {
		var ready, deferred []*message
		for _, m := range msgs {
			if m.due > 0 {
				deferred = append(deferred, m)
			} else {
				ready = append(ready, m)
			}
		}
		errs = append(errs, t.backend.Put(wireMessages(ready)))
		err := writeDeferredFile(t.cfg.dataPath, t.name, deferred)
		if err == nil {
			t.journal.remove() // the deferred file holds them now
		}
		errs = append(errs, err)
	}
	errs = append(errs, t.backend.Close())
	return errors.Join(errs...)
}

func (t *Topic) restoreDeferred() {
	if t.ephemeral {
		return
	}
	msgs, err := readDeferredAndJournal(t.cfg.dataPath, t.name, t.journal)
	if err != nil {
		t.logger.Error("reading deferred messages", "err", err)
		return
	}
	for _, m := range msgs {
		t.memory.push(m)
	}
	if len(msgs) > 0 {
		removeDeferredFile(t.cfg.dataPath, t.name)
		t.wakePump()
	}
}
