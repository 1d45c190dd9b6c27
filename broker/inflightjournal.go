package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"wren/protocol"
)

// inflightJournal keeps, with --durable, the messages a queue has taken
// off its disk queue and not yet finished with, so a crash does not lose
// them. go-diskqueue moves its read position past a record as soon as it
// is handed over and saves that position at its next sync, whatever became
// of the record's messages. A channel journals a record's messages (and
// fsyncs) before any of them is delivered; a message leaves the journal
// when it is FIN'd, or written back to the disk queue by a REQ, a timeout
// or a closing client (fsynced, with --durable), or journaled as deferred
// by a REQ with a delay. A topic journals a record while it copies it to
// its channels' disk queues. On start, whatever a journal holds is put
// back on the disk queue before anything is delivered; the journal file
// is the deferred file's format, due times 0.
//
// Left open: between go-diskqueue handing a record over and the journal's
// write there are a few microseconds in which a go-diskqueue sync
// followed by a crash loses the record. A crash after the journal write
// and before the position is saved delivers the messages twice, which
// NSQ's at-least-once delivery allows.
//
// The file is appended to and rewritten from the live messages once it
// holds more than twice as many plus 256; removed when none are live.
type inflightJournal struct {
	path string

	mu      sync.Mutex
	file    *os.File                            // nil until the next append; guarded by mu
	entries int                                 // messages in the file; guarded by mu
	live    map[protocol.MessageID]*liveMessage // guarded by mu
}

// liveMessage is a journaled message's copy (its in-flight original
// changes as it is delivered) and how many times it was journaled and not
// yet finished: a message written back to disk can be read again before
// its first journaling is finished with.
type liveMessage struct {
	msg   message
	count int
}

// openInflightJournal returns the named queue's journal, or nil when
// --durable is off or the queue is ephemeral.
func openInflightJournal(cfg *queueConfig, name string, ephemeral bool) *inflightJournal {
	if !cfg.durable || ephemeral {
		return nil
	}
	return &inflightJournal{
		path: filepath.Join(cfg.dataPath, diskQueueName(name)+".inflight-journal.dat"),
		live: make(map[protocol.MessageID]*liveMessage),
	}
}

// add journals msgs, just taken off the disk queue, and fsyncs them.
func (j *inflightJournal) add(msgs []*message) error {
	if j == nil || len(msgs) == 0 {
		return nil
	}
	var buf []byte
	for _, m := range msgs {
		buf = appendDeferredRecord(buf, &message{Message: m.Message})
	}
	j.mu.Lock()
	if j.file == nil {
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			j.mu.Unlock()
			return fmt.Errorf("opening in-flight journal: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
			buf = append([]byte(deferredMagic), buf...)
		}
		if err := syncParent(j.path); err != nil {
			f.Close()
			j.mu.Unlock()
			return err
		}
		j.file = f
	}
	for _, m := range msgs {
		e := j.live[m.ID]
		if e == nil {
			e = &liveMessage{msg: message{Message: m.Message}}
			j.live[m.ID] = e
		}
		e.count++
	}
	j.entries += len(msgs)
	f := j.file
	_, err := f.Write(buf)
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("writing in-flight journal: %w", err)
	}
	// FINs (done) need not wait for the fsync. A rewrite that closes the
	// file meanwhile has fsynced every live message, these among them.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("fsyncing in-flight journal: %w", err)
	}
	return nil
}

// done takes msgs out of the journal: they are finished, or safe again on
// disk.
func (j *inflightJournal) done(msgs ...*message) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, m := range msgs {
		if e := j.live[m.ID]; e != nil {
			if e.count--; e.count == 0 {
				delete(j.live, m.ID)
			}
		}
	}
	if len(j.live) == 0 && j.entries > 0 {
		j.resetLocked()
		return
	}
	if j.entries > 2*len(j.live)+256 {
		live := make([]*message, 0, len(j.live))
		for _, e := range j.live {
			for range e.count {
				live = append(live, &e.msg)
			}
		}
		j.closeFileLocked()
		if err := writeDeferredPath(j.path, live); err == nil {
			j.entries = len(live)
		} // else appends go on in the old file, which holds every live message
	}
}

// reset forgets every message: the queue was emptied, or every message
// is back on disk after a clean shutdown.
func (j *inflightJournal) reset() {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.resetLocked()
}

// j.mu must be held.
func (j *inflightJournal) resetLocked() {
	j.closeFileLocked()
	clear(j.live)
	j.entries = 0
	_ = os.Remove(j.path)
}

// j.mu must be held.
func (j *inflightJournal) closeFileLocked() {
	if j.file != nil {
		j.file.Close()
		j.file = nil
	}
}

// restoreInflightJournal puts what the journal kept at a crash back on the queue's disk
// queue, with put (fsynced with --durable), then removes it. A journal
// left by a durable run is restored whether or not this run is durable.
func restoreInflightJournal(dataPath, name string, put func([]protocol.Message) error) (int, error) {
	path := filepath.Join(dataPath, diskQueueName(name)+".inflight-journal.dat")
	msgs, err := readDeferredPath(path)
	if len(msgs) > 0 {
		if perr := put(wireMessages(msgs)); perr != nil {
			return 0, perr // kept for the next start
		}
	}
	if rerr := os.Remove(path); rerr != nil && !os.IsNotExist(rerr) && err == nil {
		err = rerr
	}
	return len(msgs), err
}

// journalCopy is a copy of m for a journal to encode after the queue's
// lock is released, when m itself may be changing (a deferred message
// comes due, a delivery counts an attempt).
func (m *message) journalCopy() *message {
	return &message{Message: m.Message, due: m.due}
}

func (c *Channel) restoreInflight() {
	if !c.ephemeral {
		restoreInflight(c.logger, c.cfg.dataPath, c.backendName(), c.backend.Put)
	}
}

func (t *Topic) restoreInflight() {
	if !t.ephemeral {
		restoreInflight(t.logger, t.cfg.dataPath, t.name, t.backend.Put)
	}
}

func restoreInflight(logger *slog.Logger, dataPath, name string, put func([]protocol.Message) error) {
	n, err := restoreInflightJournal(dataPath, name, put)
	if err != nil {
		logger.Error("restoring the in-flight journal", "err", err)
	}
	if n > 0 {
		logger.Info("put messages in flight at a crash back on disk", "count", n)
	}
}
