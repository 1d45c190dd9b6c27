package diskqueue

import (
	"encoding/binary"
	"errors"
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
	retry     *writeGroup   // acknowledged messages whose write failed, to write again; guarded by mu
	emptied   int64         // how many times Empty ran; guarded by mu
	stopping  chan struct{} // closed when Close or Delete begins: retries stop waiting

	depth    atomic.Int64 // messages put and not yet taken
	activity atomic.Int64 // bumped by every Put and Take, for reconcile

	syncer  *syncer           // nil for a discard or durable backlog
	durable *durableCommitter // nil unless Options.Durable

	// onWriteState hears when writes start failing (a non-nil error) and
	// when one succeeds again (nil); writes are serialised, so the calls
	// come in order.
	onWriteState func(error)

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
	ackedAt []msgSpan     // where those Puts' messages are in the group
	written int64         // messages in the records written before a failure
	retryOf int64         // for a retry group, b.emptied when its messages were put; else -1
	waiters int           // Puts that wait for the write
	done    chan struct{} // closed once written; err is set before
	err     error
}

// msgSpan is the messages start..start+n of a group.
type msgSpan struct{ start, n int64 }

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, RecordTarget); return &b }}

// OpenBacklog opens the named queue like Open and counts the messages in
// it.
func OpenBacklog(o Options) *Backlog {
	b := newBacklog(o.Name, o.Logger, true)
	b.writeBehind = max(o.WriteBehind, 0)
	b.damagedFiles.Add(repairMetadata(o, queueLogger(o)))
	b.onWriteState = o.OnWriteState
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
	b.queue = openRepaired(o)
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
		closed: make(chan struct{}), hurry: make(chan struct{}, 1), stopping: make(chan struct{})}
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
		g = &writeGroup{done: make(chan struct{}), retryOf: -1}
		b.pending = g
	}
	start := g.total
	g.add(msgs)
	b.depth.Add(n)
	b.unwritten += n
	wait := b.unwritten > b.writeBehind || b.writeErr != nil || b.closing
	if wait {
		g.waiters++
	} else {
		g.acked += n
		g.ackedAt = append(g.ackedAt, msgSpan{start, n})
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
		return g.result(start, n)
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
	if b.pending != nil || b.retry != nil {
		next := b.pending
		b.pending = nil
		b.drained = make(chan struct{})
		b.mu.Unlock()
		go b.drain(next)
	} else {
		b.writing = false
		b.mu.Unlock()
	}
	return g.result(start, n)
}

// WriteError is a failed Put's error. Written is how many of the Put's
// messages, its first ones, were written all the same (a group is written
// as several records, and the disk may fill between them), so a caller
// can retry the rest without duplicating those.
type WriteError struct {
	Written int
	Err     error
}

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Written says how many of a failed Put's messages were written: a
// WriteError's count, else none.
func Written(err error) int {
	var we *WriteError
	if errors.As(err, &we) {
		return we.Written
	}
	return 0
}

// result is the outcome of the Put whose n messages start at offset start
// in the group. g.done must be closed.
func (g *writeGroup) result(start, n int64) error {
	if g.err == nil {
		return nil
	}
	return &WriteError{Written: int(min(max(g.written-start, 0), n)), Err: g.err}
}

// drain writes g and then every group put while it wrote, until none is
// left. Given no group, it first lets the pending one gather Puts for
// coalesceWindow, or until a Put waits for it. Acknowledged messages whose
// write failed are written again, after a backoff that grows from
// minRetryBackoff to maxRetryBackoff, taking turns with the pending group
// so Puts that wait still hear the disk's error.
func (b *Backlog) drain(g *writeGroup) {
	if g == nil {
		window := time.NewTimer(coalesceWindow)
		select {
		case <-window.C:
		case <-b.hurry:
			window.Stop()
		}
	}
	backoff := minRetryBackoff
	lastWasRetry := false
	for {
		retry := false
		b.mu.Lock()
		if g == nil {
			if b.retry != nil && !(lastWasRetry && b.pending != nil) {
				g, b.retry, retry = b.retry, nil, true
				b.current = g // so Empty waits for it rather than missing it
			} else {
				g, b.pending = b.pending, nil
			}
		}
		if g == nil {
			b.writing = false
			close(b.drained)
			b.drained = nil
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if retry {
			wait := time.NewTimer(backoff)
			select {
			case <-wait.C:
			case <-b.stopping:
				wait.Stop()
			case <-b.hurry:
				// A Put waits for its write: write its group now and
				// this retry after, so a failing disk answers publishers
				// at once rather than after the retry's backoff.
				wait.Stop()
				b.mu.Lock()
				if b.pending != nil {
					if b.retry != nil {
						g.merge(b.retry)
					}
					b.retry, b.current = g, nil
					b.mu.Unlock()
					g, lastWasRetry = nil, true
					continue
				}
				b.mu.Unlock()
			}
		}
		b.write(g)
		if retry {
			backoff = min(2*backoff, maxRetryBackoff)
			if g.err == nil {
				backoff = minRetryBackoff
			}
		}
		lastWasRetry = retry
		g = nil
	}
}

// The backoff between writes of acknowledged messages whose write failed.
const (
	minRetryBackoff = 10 * time.Millisecond
	maxRetryBackoff = time.Second
)

// add encodes msgs into the group's records. b.mu must be held.
func (g *writeGroup) add(msgs []protocol.Message) {
	for i := range msgs {
		m := &msgs[i]
		size := m.EncodedSize()
		last := g.recordFor(size)
		rec := AppendEntry(g.records[last], size)
		g.records[last] = protocol.AppendMessage(rec, m)
		g.counts[last]++
	}
	g.total += int64(len(msgs))
}

// recordFor returns the index of the record an entry of size bytes goes
// in, beginning a new one when the last is full.
func (g *writeGroup) recordFor(size int) int {
	last := len(g.records) - 1
	if last < 0 || (g.counts[last] > 0 && len(g.records[last])+EntryHeaderSize+size > RecordTarget) {
		buf := recordPool.Get().(*[]byte)
		g.records = append(g.records, BeginRecord((*buf)[:0]))
		g.counts = append(g.counts, 0)
		last++
	}
	return last
}

// addEntry appends an encoded message to the group's records.
func (g *writeGroup) addEntry(entry []byte) {
	last := g.recordFor(len(entry))
	g.records[last] = append(AppendEntry(g.records[last], len(entry)), entry...)
	g.counts[last]++
	g.total++
}

// isAcked reports whether message i of the group was acknowledged before
// its write.
func (g *writeGroup) isAcked(i int64) bool {
	for _, sp := range g.ackedAt {
		if i >= sp.start && i < sp.start+sp.n {
			return true
		}
	}
	return false
}

// keepAcked copies the acknowledged messages of rec, the group's record
// whose first message is message first, into keep (made when nil), and
// says how many there were.
func (g *writeGroup) keepAcked(keep **writeGroup, rec []byte, first int64, count int, copyThem bool) int64 {
	var n int64
	off := RecordHeaderSize
	for k := 0; k < count; k++ {
		size := int(binary.BigEndian.Uint32(rec[off:]))
		entry := rec[off+EntryHeaderSize : off+EntryHeaderSize+size]
		off += EntryHeaderSize + size
		if !g.isAcked(first + int64(k)) {
			continue
		}
		n++
		if copyThem {
			if *keep == nil {
				*keep = &writeGroup{done: make(chan struct{})}
			}
			(*keep).addEntry(entry)
		}
	}
	return n
}

// merge appends other's records to g's; both are retry groups, whose
// messages were all acknowledged.
func (g *writeGroup) merge(other *writeGroup) {
	g.records = append(g.records, other.records...)
	g.counts = append(g.counts, other.counts...)
	g.total += other.total
	g.acked += other.acked
	g.ackedAt = []msgSpan{{0, g.total}}
}

// write puts the group's records to the queue, then wakes its members.
// Messages of a failed write whose Puts waited for it are taken off the
// depth (their Puts return the error). Those whose Puts did not wait were
// acknowledged: they stay queued and are written again (see drain), unless
// the backlog is closing, when they are lost, and said so in the log.
func (b *Backlog) write(g *writeGroup) {
	b.mu.Lock()
	if g.retryOf >= 0 && g.retryOf != b.emptied {
		// Empty ran since these messages were put: they are gone.
		b.unwritten -= g.total
		b.mu.Unlock()
		for _, rec := range g.records {
			recordPool.Put(&rec)
		}
		g.records = nil
		close(g.done)
		return
	}
	b.current = g
	closing := b.closing
	emptied := b.emptied
	b.mu.Unlock()
	if b.durable != nil {
		b.durable.mu.Lock()
	}
	var failed, ackedFailed int64
	var keep *writeGroup
	var first int64 // the group's index of the record's first message
	for i, rec := range g.records {
		if g.err == nil {
			if err := b.queue.Put(FinishRecord(rec, g.counts[i])); err != nil {
				g.err = fmt.Errorf("writing to disk queue %s: %w", b.name, err)
			} else {
				if b.syncer != nil {
					b.syncer.wrote(g.counts[i])
				}
				g.written += int64(g.counts[i])
			}
		}
		if g.err != nil {
			failed += int64(g.counts[i])
			if g.acked > 0 {
				ackedFailed += g.keepAcked(&keep, rec, first, g.counts[i], !closing)
			}
		}
		first += int64(g.counts[i])
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
	var kept int64
	if keep != nil {
		kept = keep.total
		keep.retryOf = emptied
		keep.acked = kept
		keep.ackedAt = []msgSpan{{0, kept}}
	}
	b.depth.Add(-(failed - kept))
	b.mu.Lock()
	b.unwritten -= g.total - kept
	changed := (b.writeErr == nil) != (g.err == nil)
	b.writeErr = g.err
	b.current = nil
	switch {
	case keep == nil:
	case keep.retryOf != b.emptied: // Empty ran meanwhile
		b.unwritten -= kept
		for _, rec := range keep.records {
			recordPool.Put(&rec)
		}
	case b.retry != nil:
		b.retry.merge(keep)
	default:
		b.retry = keep
	}
	b.mu.Unlock()
	if changed && b.onWriteState != nil {
		b.onWriteState(g.err)
	}
	if kept > 0 {
		b.logger.Error("write failed; keeping the acknowledged messages to write again",
			"err", g.err, "messages", kept)
	}
	if lost := ackedFailed - kept; lost > 0 {
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

// Lost is how many messages were acknowledged to their publishers before
// a write that failed: they never reached the disk.
func (b *Backlog) Lost() int64 { return b.lost.Load() }

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
	b.emptied++
	b.dropRetryLocked()
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
		// A write that failed again kept its acknowledged messages.
		b.mu.Lock()
		b.dropRetryLocked()
		b.mu.Unlock()
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

// dropRetryLocked discards the acknowledged messages waiting to be
// written again. b.mu must be held.
func (b *Backlog) dropRetryLocked() {
	r := b.retry
	if r == nil {
		return
	}
	b.retry = nil
	b.unwritten -= r.total
	for _, rec := range r.records {
		recordPool.Put(&rec)
	}
	r.records = nil
}

// Close syncs and closes the queue, keeping its files. Only the first
// Close or Delete acts; later ones return nil.
func (b *Backlog) Close() error { return b.finish(b.queue.Close) }

// Delete closes the queue and removes its files. A queue whose writes
// were failing reports itself healthy: it holds nothing any more.
func (b *Backlog) Delete() error {
	return b.finish(func() error {
		b.depth.Store(0)
		b.mu.Lock()
		failing := b.writeErr != nil
		b.writeErr = nil
		b.mu.Unlock()
		if failing && b.onWriteState != nil {
			b.onWriteState(nil)
		}
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
		close(b.stopping)
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
