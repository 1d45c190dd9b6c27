package diskqueue

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

// syncer fsyncs a backlog's data every SyncEvery messages, as nsqd's
// --sync-every means: go-diskqueue counts records, and a wren record
// holds a whole batch, so its own count would let a batch-sized multiple
// of that go unsynced. The fsync runs on a goroutine of its own: writers
// are not held up while the disk catches up, and a burst that arrives
// during one fsync is covered by the next.
//
// fsync(2) flushes a file whatever descriptor it is called on, so the
// syncer opens the queue's newest data file itself. go-diskqueue syncs a
// file when it moves on to the next, so only the newest one can hold
// unsynced writes; file numbers only grow, and the newest is found by
// looking for the next number.
type syncer struct {
	o       Options
	logger  *slog.Logger
	every   int64
	written atomic.Int64 // messages written since the last fsync was asked for
	kick    chan struct{}
	done    chan struct{}
	exited  chan struct{}

	fileNum int64 // owned by run
	file    *os.File
}

func newSyncer(o Options, logger *slog.Logger, writeFile int64) *syncer {
	s := &syncer{
		o: o, logger: logger, every: max(o.SyncEvery, 1), fileNum: writeFile,
		kick: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{}),
	}
	go s.run()
	return s
}

// wrote counts n messages written and asks for an fsync once every
// messages have been written since the last one.
func (s *syncer) wrote(n int) {
	if s.written.Add(int64(n)) < s.every {
		return
	}
	s.written.Store(0)
	select {
	case s.kick <- struct{}{}:
	default: // an fsync is already due; it covers these messages too
	}
}

func (s *syncer) run() {
	defer close(s.exited)
	defer func() {
		if s.file != nil {
			s.file.Close()
		}
	}()
	for {
		select {
		case <-s.kick:
			if err := s.sync(); err != nil {
				s.logger.Error("syncing disk queue", "err", err)
			}
		case <-s.done:
			return
		}
	}
}

func (s *syncer) sync() error {
	newest := s.fileNum
	for {
		if _, err := os.Stat(segmentPath(s.o, newest+1)); err != nil {
			break
		}
		newest++
	}
	if s.file == nil || newest != s.fileNum {
		if s.file != nil {
			s.file.Close()
			s.file = nil
		}
		f, err := os.Open(segmentPath(s.o, newest))
		if errors.Is(err, os.ErrNotExist) {
			// Emptied, set aside as bad, or not written yet: go on
			// from the newest file there is, if any.
			if n, ok := newestSegment(s.o); ok && n > s.fileNum {
				s.fileNum = n
				return s.sync()
			}
			return nil
		}
		if err != nil {
			return err
		}
		s.file, s.fileNum = f, newest
	}
	return s.file.Sync()
}

func (s *syncer) stop() {
	close(s.done)
	<-s.exited
}

// newestSegment is the highest number among the queue's data files.
func newestSegment(o Options) (int64, bool) {
	paths, _ := filepath.Glob(filepath.Join(o.DataPath, o.Name+".diskqueue.*.dat"))
	newest, found := int64(-1), false
	prefix := o.Name + ".diskqueue."
	for _, p := range paths {
		digits := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), prefix), ".dat")
		if n, err := strconv.ParseInt(digits, 10, 64); err == nil && n > newest {
			newest, found = n, true
		}
	}
	return newest, found
}
