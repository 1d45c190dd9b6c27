// Package diskqueue is wren's persistent queue layer. It wraps
// github.com/nsqio/go-diskqueue, whose files and metadata nsqd also uses, so
// a data directory moves between nsqd and wren, and gives it named options
// instead of eight positional arguments.
//
// Each queue is owned by one goroutine inside go-diskqueue; callers talk to
// it through Put, ReadChan and the other methods of Queue.
package diskqueue

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	godiskqueue "github.com/nsqio/go-diskqueue"
)

// Queue is a FIFO of byte records. ReadChan is unbuffered: a receive takes
// the next record off the queue.
type Queue interface {
	Put(record []byte) error
	ReadChan() <-chan []byte
	Depth() int64
	Empty() error
	Close() error  // sync and close, keeping the files
	Delete() error // close and remove the files
}

// Options configure a disk queue. MinRecordSize and MaxRecordSize bound the
// size of each record; a record outside them on read marks the file bad.
type Options struct {
	Name            string // file name prefix: <Name>.diskqueue.NNNNNN.dat
	DataPath        string
	MaxBytesPerFile int64
	MinRecordSize   int32
	MaxRecordSize   int32
	SyncEvery       int64         // fsync after this many writes
	SyncTimeout     time.Duration // and at least this often while dirty
	Logger          *slog.Logger

	// WriteBehind is how many messages a Backlog's Puts may leave waiting
	// for the disk when they return; 0 makes every Put wait for its write.
	WriteBehind int64

	// OnWriteState, when set, hears each time a Backlog's writes start
	// failing (with the error) and when one succeeds again (with nil).
	OnWriteState func(error)

	// Durable makes a Backlog's Put return only once its messages are
	// fsynced where go-diskqueue's recovery finds them (see
	// durableCommitter); WriteBehind is then ignored.
	Durable bool

	// onBadFile hears each time go-diskqueue sets a damaged file aside.
	onBadFile func()
}

// Open opens (or creates) the queue named by o.Name under o.DataPath,
// restoring its read and write positions from the metadata file.
func Open(o Options) Queue {
	repairMetadata(o, queueLogger(o))
	return openRepaired(o)
}

func queueLogger(o Options) *slog.Logger {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return logger.With("queue", o.Name)
}

// openRepaired opens the queue once repairMetadata has checked its
// metadata.
func openRepaired(o Options) Queue {
	logger := queueLogger(o)
	logf := func(lvl godiskqueue.LogLevel, f string, args ...interface{}) {
		msg := strings.TrimPrefix(fmt.Sprintf(f, args...), "DISKQUEUE("+o.Name+"): ")
		// go-diskqueue says so only in its log when it renames a file it
		// cannot read to .bad and skips the rest of it.
		if o.onBadFile != nil && strings.Contains(msg, "saving bad file") {
			o.onBadFile()
		}
		switch lvl {
		case godiskqueue.DEBUG:
			logger.Debug(msg)
		case godiskqueue.INFO:
			logger.Info(msg)
		case godiskqueue.WARN:
			logger.Warn(msg)
		default:
			logger.Error(msg)
		}
	}
	return deletingQueue{godiskqueue.New(o.Name, o.DataPath, o.MaxBytesPerFile, o.MinRecordSize,
		o.MaxRecordSize, o.SyncEvery, o.SyncTimeout, logf)}
}

// deletingQueue makes Delete remove the files: go-diskqueue v1.1.0's
// Delete only closes the queue, and a channel deleted and created again
// would get its old messages back.
type deletingQueue struct{ godiskqueue.Interface }

func (q deletingQueue) Delete() error {
	emptyErr := q.Interface.Empty()
	return errors.Join(emptyErr, q.Interface.Delete())
}

// metadataPath is where go-diskqueue keeps a queue's positions.
func metadataPath(o Options) string {
	return filepath.Join(o.DataPath, o.Name+".diskqueue.meta.dat")
}

// Discard is the queue of an ephemeral topic or channel: records put to it
// are dropped and it never has anything to read.
type Discard struct{ never chan []byte }

// NewDiscard returns a queue that keeps nothing.
func NewDiscard() *Discard { return &Discard{never: make(chan []byte)} }

func (d *Discard) Put([]byte) error        { return nil }
func (d *Discard) ReadChan() <-chan []byte { return d.never }
func (d *Discard) Depth() int64            { return 0 }
func (d *Discard) Empty() error            { return nil }
func (d *Discard) Close() error            { return nil }
func (d *Discard) Delete() error           { return nil }
