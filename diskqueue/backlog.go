package diskqueue

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"wren/protocol"
)

// RecordTarget is the size a batch record grows to before the next
// message starts a new one. A message larger than that gets a record of
// its own. 64 KiB (about 500 messages of 100 bytes) keeps a record and
// the messages decoded from it in cache while a pump hands them out;
// 1 MiB records consumed 6-8% slower.
const RecordTarget = 64 << 10

// MaxRecordSize is the largest record a backlog writes for messages of at
// most maxMsgSize body bytes.
func MaxRecordSize(maxMsgSize int64) int32 {
	largest := int64(EntryHeaderSize + protocol.MessageHeaderSize + maxMsgSize)
	return int32(RecordHeaderSize + max(largest, RecordTarget))
}

// coalesceWindow is how long a write-behind backlog lets a small batch
// gather more Puts before writing it: one message per round trip from
// many publishers becomes one record a millisecond rather than one each.
const coalesceWindow = time.Millisecond

// reconcileEvery is how often a backlog whose count may have drifted
// (after damage or Empty) checks whether the queue has run dry.
const reconcileEvery = time.Second

// Backlog is a disk queue of messages. Messages put together are written
// together: each Put becomes part of one batch record, and Puts that
// arrive while another is being written join the next record (group
// commit), so many publishers cost one write(2) between them.
//
// A backlog opened with a WriteBehind allowance lets Put return before its
// messages are written while no more than that many are waiting for the
// disk, as nsqd's topic queue holds published messages in memory ahead of
// the channels' disk queues. A writer goroutine drains them in large
// records. Past the allowance, and always without one, a Put returns only
// once its messages are written (or have failed to be).
//
// The number of messages in the queue is a counter the backlog keeps
// itself, so Depth never waits on the queue's goroutine (which blocks while
// it fsyncs). Records written by nsqd v1.3.0 (one message each) read as
// one-message batches.
type Backlog struct {
	name        string
	queue       Queue
	logger      *slog.Logger
	keeps       bool  // false for an ephemeral backlog, which drops what it is given
	writeBehind int64 // messages a Put may leave unwritten when it returns

	mu        sync.Mutex
	pending   *writeGroup   // messages waiting for the next write; guarded by mu
	writing   bool          // a writer is writing records now; guarded by mu
	unwritten int64         // messages put and not yet written; guarded by mu
	writeErr  error         // the last write's error, nil once one succeeds; guarded by mu
	drained   chan struct{} // closed when the running drain ends; guarded by mu
	closing   bool          // Close or Delete has begun; guarded by mu
	hurry     chan struct{} // ends a drain's coalescing window early
	current   *writeGroup   // the group being written; guarded by mu

	depth    atomic.Int64 // messages put and not yet taken
	activity atomic.Int64 // bumped by every Put and Take, for reconcile

	syncer  *syncer           // nil for a discard or durable backlog
	durable *durableCommitter // nil unless Options.Durable

	damagedRecords atomic.Int64
	damagedFiles   atomic.Int64
	lost           atomic.Int64 // messages put without waiting whose write failed
	suspect        atomic.Bool  // depth may be off: damage was found or the queue emptied
	reconciling    atomic.Bool
	closed         chan struct{}
	closeOnce      sync.Once
}

// writeGroup is the messages of the Puts that are written together.
type writeGroup struct {
	records [][]byte
	counts  []int
	total   int64
	acked   int64         // messages of Puts that returned without waiting
	waiters int           // Puts that wait for the write
	done    chan struct{} // closed once written; err is set before
	err     error
}

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, RecordTarget); return &b }}

// OpenBacklog opens the named queue like Open and counts the messages in
// it.
func OpenBacklog(o Options) *Backlog {
	b := newBacklog(o.Name, o.Logger, true)
	b.writeBehind = max(o.WriteBehind, 0)
	if o.Durable {
		b.writeBehind = 0
		if err := ensureMetadata(o); err != nil {
			b.logger.Error("durable queue without metadata: a crash before its first sync loses its first file", "err", err)
		}
	}
	depth, writeFile, err := countEntries(o)
	if err != nil {
		b.logger.Warn("counting the messages on disk", "err", err)
	}
	b.depth.Store(depth)
	o.onBadFile = b.badFile
	b.queue = Open(o)
	if o.Durable {
		b.durable = newDurableCommitter(o, writeFile)
	} else {
		b.syncer = newSyncer(o, b.logger, writeFile)
	}
	return b
}

// NewDiscardBacklog is the backlog of an ephemeral topic or channel: it
// keeps nothing.
func NewDiscardBacklog() *Backlog {
	b := newBacklog("", nil, false)
	b.queue = NewDiscard()
	return b
}

func newBacklog(name string, logger *slog.Logger, keeps bool) *Backlog {
	if logger == nil {
		logger = slog.Default()
	}
	return &Backlog{name: name, logger: logger.With("queue", name), keeps: keeps,
		closed: make(chan struct{}), hurry: make(chan struct{}, 1)}
}

// Put queues msgs for the disk. It returns at once while the messages
// waiting to be written fit the backlog's write-behind allowance and the
// last write succeeded; otherwise it returns once they are written (or have
// failed to be).
func (b *Backlog) Put(msgs []protocol.Message) error {
	if len(msgs) == 0 || !b.keeps {
		return nil
	}
	b.activity.Add(1)
	n := int64(len(msgs))
	b.mu.Lock()
	g := b.pending
	if g == nil {
		g = &writeGroup{done: make(chan struct{})}
		b.pending = g
	}
	g.add(msgs)
	b.depth.Add(n)
	b.unwritten += n
	wait := b.unwritten > b.writeBehind || b.writeErr != nil || b.closing
	if wait {
		g.waiters++
	} else {
		g.acked += n
	}
	if b.writing {
		b.mu.Unlock()
		if !wait {
			return nil
		}
		select {
		case b.hurry <- struct{}{}:
		default:
		}
		<-g.done
		return g.err
	}
	b.writing = true
	if !wait {
		// g stays pending for a moment, so the Puts of the next
		// coalesceWindow join it in one record.
		b.drained = make(chan struct{})
		b.mu.Unlock()
		go b.drain(nil)
		return nil
	}
	b.pending = nil
	b.mu.Unlock()

	// This Put writes its own group and hands what arrived meanwhile to a
	// drain, so it does not keep writing for others.
	b.write(g)
	b.mu.Lock()
	if b.pending != nil {
		next := b.pending
		b.pending = nil
		b.drained = make(chan struct{})
		b.mu.Unlock()
		go b.drain(next)
	} else {
		b.writing = false
		b.mu.Unlock()
	}
	return g.err
}

// drain writes g and then every group put while it wrote, until none is
// left. Given no group, it first lets the pending one gather Puts for
// coalesceWindow, or until a Put waits for it.
func (b *Backlog) drain(g *writeGroup) {
	if g == nil {
		window := time.NewTimer(coalesceWindow)
		select {
		case <-window.C:
		case <-b.hurry:
			window.Stop()
		}
	}
	for {
		b.mu.Lock()
		if g == nil {
			g = b.pending
			b.pending = nil
		}
		if g == nil {
			b.writing = false
			close(b.drained)
			b.drained = nil
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.write(g)
		g = nil
	}
}

// add encodes msgs into the group's records. b.mu must be held.
func (g *writeGroup) add(msgs []protocol.Message) {
	last := len(g.records) - 1
	for i := range msgs {
		m := &msgs[i]
		size := m.EncodedSize()
		if last < 0 || (g.counts[last] > 0 && len(g.records[last])+EntryHeaderSize+size > RecordTarget) {
			buf := recordPool.Get().(*[]byte)
			g.records = append(g.records, BeginRecord((*buf)[:0]))
			g.counts = append(g.counts, 0)
			last++
		}
		rec := AppendEntry(g.records[last], size)
		g.records[last] = protocol.AppendMessage(rec, m)
		g.counts[last]++
	}
	g.total += int64(len(msgs))
}

// write puts the group's records to the queue, then wakes its members.
// Messages of a failed write are taken off the depth; those whose Puts
// did not wait for it are lost, and said so in the log.
func (b *Backlog) write(g *writeGroup) {
	b.mu.Lock()
	b.current = g
	b.mu.Unlock()
	if b.durable != nil {
		b.durable.mu.Lock()
	}
	var failed int64
	for i, rec := range g.records {
		if g.err == nil {
			if err := b.queue.Put(FinishRecord(rec, g.counts[i])); err != nil {
				g.err = fmt.Errorf("writing to disk queue %s: %w", b.name, err)
			} else if b.syncer != nil {
				b.syncer.wrote(g.counts[i])
			}
		}
		if g.err != nil {
			failed += int64(g.counts[i])
		}
		recordPool.Put(&rec)
	}
	g.records = nil
	if b.durable != nil {
		// One fsync for every Put of the group. Messages written and not
		// fsynced stay in the queue, but their Puts fail.
		if g.err == nil {
			if err := b.durable.commit(); err != nil {
				g.err = fmt.Errorf("fsyncing disk queue %s: %w", b.name, err)
			}
		}
		b.durable.mu.Unlock()
	}
	b.depth.Add(-failed)
	b.mu.Lock()
	b.unwritten -= g.total
	b.writeErr = g.err
	b.current = nil
	b.mu.Unlock()
	if lost := min(failed, g.acked); lost > 0 {
		n := b.lost.Add(lost)
		b.logger.Error("lost messages acknowledged before their write failed",
			"err", g.err, "messages", lost, "lost_total", n)
	}
	close(g.done)
}

// ReadChan delivers the queue's records, oldest first; pass each to Take.
func (b *Backlog) ReadChan() <-chan []byte { return b.queue.ReadChan() }

// Take decodes a record received from ReadChan, appends its messages to
// dst and takes them off the depth. A damaged record is logged, counted
// and skipped: none of its messages are returned. Message bodies alias
// rec.
func (b *Backlog) Take(rec []byte, dst []protocol.Message) []protocol.Message {
	b.activity.Add(1)
	start := len(dst)
	err := eachEntry(rec, func(entry []byte) error {
		m, err := protocol.DecodeMessage(entry)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDamagedRecord, err)
		}
		dst = append(dst, m)
		return nil
	})
	if err != nil {
		dst = dst[:start]
		b.depth.Add(-min(max(recordEntryCount(rec, len(rec)), 1), max(b.depth.Load(), 0)))
		n := b.damagedRecords.Add(1)
		b.logger.Error("skipped a damaged disk-queue record", "err", err, "bytes", len(rec), "damaged_records", n)
		b.markSuspect()
		return dst
	}
	b.depth.Add(-int64(len(dst) - start))
	return dst
}

// Depth is the number of messages in the queue.
func (b *Backlog) Depth() int64 { return max(b.depth.Load(), 0) }

// Damaged reports how many damaged records were skipped and how many
// files were set aside as unreadable since the backlog opened.
func (b *Backlog) Damaged() (records, files int64) {
	return b.damagedRecords.Load(), b.damagedFiles.Load()
}

// badFile hears from the queue that it set a damaged file aside.
func (b *Backlog) badFile() {
	n := b.damagedFiles.Add(1)
	b.logger.Error("set aside a damaged disk-queue file", "damaged_files", n)
	b.markSuspect()
}

// markSuspect starts a watch that sets the count to zero once the queue
// is seen empty and idle: damaged records may have held more or fewer
// messages than their headers say, and a record read before an Empty
// is taken after it.
func (b *Backlog) markSuspect() {
	b.suspect.Store(true)
	if b.reconciling.Swap(true) {
		return
	}
	go b.reconcile()
}

func (b *Backlog) reconcile() {
	defer b.reconciling.Store(false)
	ticker := time.NewTicker(reconcileEvery)
	defer ticker.Stop()
	lastActivity := b.activity.Load()
	for b.suspect.Load() {
		select {
		case <-ticker.C:
		case <-b.closed:
			return
		}
		activity, depth := b.activity.Load(), b.depth.Load()
		idle := activity == lastActivity
		lastActivity = activity
		if !idle || b.queue.Depth() != 0 || b.activity.Load() != activity {
			continue
		}
		if depth != 0 && b.depth.CompareAndSwap(depth, 0) {
			b.logger.Warn("disk queue is empty; corrected its message count", "was", depth)
		}
		b.suspect.Store(false)
	}
}

// Empty removes every message put before it: those on disk, those
// waiting to be written, and those being written (it waits for that write
// to end).
func (b *Backlog) Empty() error {
	b.mu.Lock()
	writing := b.current
	if g := b.pending; g != nil {
		b.pending = nil
		b.unwritten -= g.total
		for _, rec := range g.records {
			recordPool.Put(&rec)
		}
		g.records = nil
		close(g.done)
	}
	b.mu.Unlock()
	if writing != nil {
		<-writing.done
	}
	if b.durable != nil {
		b.durable.mu.Lock()
		defer b.durable.mu.Unlock()
		defer b.durable.wasEmptied()
	}
	err := b.queue.Empty()
	b.depth.Store(0)
	b.markSuspect()
	return err
}

// Close syncs and closes the queue, keeping its files. Only the first
// Close or Delete acts; later ones return nil.
func (b *Backlog) Close() error { return b.finish(b.queue.Close) }

// Delete closes the queue and removes its files.
func (b *Backlog) Delete() error {
	return b.finish(func() error {
		b.depth.Store(0)
		return b.queue.Delete()
	})
}

func (b *Backlog) finish(end func() error) error {
	var err error
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true // later Puts write before they return
		drained := b.drained
		b.mu.Unlock()
		if drained != nil {
			select {
			case b.hurry <- struct{}{}:
			default:
			}
			<-drained
		}
		close(b.closed)
		if b.syncer != nil {
			b.syncer.stop()
		}
		if b.durable != nil {
			b.durable.close()
		}
		err = end()
	})
	return err
}
