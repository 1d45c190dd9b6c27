package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// deferJournal makes deferred messages durable with --durable. nsqd's disk
// queue format has no room for a due time, so a deferred message waits in
// memory (a channel's deferred heap, or the topic's memory queue while no
// channel can take it) and reaches the disk only at a clean shutdown, in
// the deferred file. With --durable each queue also keeps a journal in the
// deferred file's format: a DPUB appends its messages and fsyncs before it
// is answered, so a crash leaves them in the journal, and the next start
// restores them with their due times.
//
// The journal is never edited in place. When a deferred message comes due
// it is written to the disk queue (fsynced: --durable has no memory
// queue), and once the journal holds more than twice the messages still
// deferred, it is rewritten from them. Until then a crash restores
// messages that had already come due: they are delivered twice, which
// NSQ's at-least-once delivery allows. The topic's journal is removed
// whenever its memory queue is empty: by then the channels have journaled
// (or queued on disk) what it held.
//
// Lock order: a journal's mu is taken before the mu of its own topic or
// channel; a channel's journal may be appended to while its topic's mu is
// held.
type deferJournal struct {
	path string

	mu      sync.Mutex
	file    *os.File // open for appending; nil until the first append
	entries int      // messages in the file; guarded by mu

	groupMu  sync.Mutex
	next     *journalGroup // appends waiting for the next write; guarded by groupMu
	flushing bool          // an append is writing groups; guarded by groupMu

	fsyncs atomic.Int64 // journal fsyncs, for tests
}

func deferJournalPath(dataPath, name string) string {
	return filepath.Join(dataPath, diskQueueName(name)+".deferred-journal.dat")
}

// openDeferJournal returns the journal of the named queue, or nil when
// --durable is off or the queue is ephemeral.
func openDeferJournal(cfg *queueConfig, name string, ephemeral bool) *deferJournal {
	if !cfg.durable || ephemeral {
		return nil
	}
	return &deferJournal{path: deferJournalPath(cfg.dataPath, name)}
}

// append journals msgs and returns once they are fsynced. Appends that
// arrive while another group is written and fsynced form the next group,
// which one fsync covers (group commit, as in the disk queue's Backlog).
func (j *deferJournal) append(msgs []*message) error {
	if j == nil || len(msgs) == 0 {
		return nil
	}
	j.groupMu.Lock()
	g := j.next
	if g == nil {
		g = &journalGroup{done: make(chan struct{})}
		j.next = g
	}
	for _, m := range msgs {
		g.buf = appendDeferredRecord(g.buf, m)
	}
	g.count += len(msgs)
	if j.flushing {
		j.groupMu.Unlock()
		<-g.done
		return g.err
	}
	// This append writes its own group and leaves the ones formed
	// meanwhile to a drain, so it does not keep writing for others.
	j.flushing = true
	j.next = nil
	j.groupMu.Unlock()
	g.err = j.write(g.buf, g.count)
	close(g.done)
	j.groupMu.Lock()
	if j.next != nil {
		go j.drain()
	} else {
		j.flushing = false
	}
	j.groupMu.Unlock()
	return g.err
}

// drain writes the waiting groups until none is left.
func (j *deferJournal) drain() {
	for {
		j.groupMu.Lock()
		g := j.next
		j.next = nil
		if g == nil {
			j.flushing = false
			j.groupMu.Unlock()
			return
		}
		j.groupMu.Unlock()
		g.err = j.write(g.buf, g.count)
		close(g.done)
	}
}

// journalGroup is the messages of the appends that share one fsync.
type journalGroup struct {
	buf   []byte
	count int
	done  chan struct{} // closed once written; err is set before
	err   error
}

// write appends buf, holding count messages, to the journal and fsyncs
// it.
func (j *deferJournal) write(buf []byte, count int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil {
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening deferred journal: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
			if _, err := f.WriteString(deferredMagic); err != nil {
				f.Close()
				return fmt.Errorf("writing deferred journal: %w", err)
			}
		}
		if err := syncParent(j.path); err != nil {
			f.Close()
			return err
		}
		j.file = f
	}
	if _, err := j.file.Write(buf); err != nil {
		return fmt.Errorf("writing deferred journal: %w", err)
	}
	j.fsyncs.Add(1)
	if err := j.file.Sync(); err != nil {
		return fmt.Errorf("fsyncing deferred journal: %w", err)
	}
	j.entries += count
	return nil
}

// compact rewrites the journal from the messages still deferred, which
// live returns, once it holds more than twice as many; force rewrites it
// whatever its size. No live messages removes it.
func (j *deferJournal) compact(live func() []*message, force bool) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	msgs := live()
	if !force && j.entries <= 2*len(msgs)+64 && (len(msgs) > 0 || j.entries == 0) {
		return nil
	}
	j.closeFileLocked()
	j.entries = len(msgs)
	return writeDeferredPath(j.path, msgs)
}

// remove deletes the journal: its messages are in the deferred file now,
// or gone with their queue.
func (j *deferJournal) remove() {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeFileLocked()
	j.entries = 0
	_ = os.Remove(j.path)
}

// j.mu must be held.
func (j *deferJournal) closeFileLocked() {
	if j.file != nil {
		j.file.Close()
		j.file = nil
	}
}

// readDeferredAndJournal reads what a queue kept deferred across its last
// run: the deferred file of a clean shutdown and the journal of a durable
// one, whether or not this run is durable. A durable run journals them
// again, in one rewrite, before the deferred file goes; otherwise the
// journal is removed.
func readDeferredAndJournal(dataPath, name string, j *deferJournal) ([]*message, error) {
	msgs, err := readDeferredFile(dataPath, name)
	journaled, jerr := readDeferredPath(deferJournalPath(dataPath, name))
	msgs = append(msgs, journaled...)
	if jerr != nil {
		jerr = fmt.Errorf("reading deferred journal: %w", jerr)
	}
	err = errors.Join(err, jerr)
	if j == nil {
		_ = os.Remove(deferJournalPath(dataPath, name))
		return msgs, err
	}
	if cerr := j.compact(func() []*message { return msgs }, true); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return msgs, err
}

func syncParent(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = dir.Sync()
	if cerr := dir.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeIf removes the journal when empty reports that nothing it holds
// is still waiting (empty runs with j.mu held, so an append cannot slip
// between the check and the removal).
func (j *deferJournal) removeIf(empty func() bool) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.entries == 0 && j.file == nil || !empty() {
		return
	}
	j.closeFileLocked()
	j.entries = 0
	_ = os.Remove(j.path)
}

// deferredSnapshot is a copy of the channel's deferred messages.
func (c *Channel) deferredSnapshot() []*message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*message(nil), c.deferred...)
}

// memoryEmpty reports whether the topic's memory queue, which holds only
// deferred messages with --durable, is empty.
func (t *Topic) memoryEmpty() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.memory.len() == 0
}
