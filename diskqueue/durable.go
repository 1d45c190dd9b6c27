package diskqueue

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// durableCommitter makes a durable backlog's writes survive a power cut
// before its Puts return. The backlog calls commit once per write group,
// after the group's records are written, so every Put of the group shares
// one fsync (group commit).
//
// What recovery needs, from go-diskqueue v1.1.0's retrieveMetaData and
// readOne: the data fsynced, and a metadata file naming a write file no
// later than the one the data is in. A metadata file that is older than
// the data does no harm: when the write file is longer than the recorded
// write position, go-diskqueue moves writing on to a new file and reads
// the old one to its end, so records written after the last metadata
// update are still read. So the metadata itself need not be rewritten per
// group; three things are needed instead:
//
//   - A metadata file must exist: without one go-diskqueue starts at file
//     0, position 0 and reads nothing already in file 0. ensureMetadata
//     writes one at open. Empty removes it, and go-diskqueue writes the
//     next one only at its next sync, so the first commit after an Empty
//     writes one naming the file that commit found written.
//   - When go-diskqueue rolls over to a new file it writes (and fsyncs) a
//     metadata file naming the new file and renames it into place, then
//     creates the new data file. Neither the rename nor the creation is
//     durable until the directory is fsynced, so commit fsyncs the
//     directory whenever the newest data file has changed since its last
//     commit. Otherwise an old metadata file would name the previous file
//     and the records in the new one would never be read.
//   - The newest data file is fsynced; go-diskqueue fsyncs each older file
//     when it moves on from it.
type durableCommitter struct {
	o Options

	mu      sync.Mutex // held across a group's writes and its commit
	fileNum int64      // the newest data file at the last commit; guarded by mu
	file    *os.File   // guarded by mu
	synced  bool       // the directory was fsynced since fileNum became newest; guarded by mu
	emptied bool       // Empty removed the metadata file; guarded by mu

	fsyncs atomic.Int64 // data-file and directory fsyncs, for tests and stats
}

func newDurableCommitter(o Options, writeFile int64) *durableCommitter {
	return &durableCommitter{o: o, fileNum: writeFile}
}

// commit makes every record written so far durable. d.mu must be held.
func (d *durableCommitter) commit() error {
	newest := d.fileNum
	if d.emptied {
		// Empty removed every file and moved writing on by one or two
		// (two when a stale metadata file had moved it on already): the
		// only file now is the one just written, from its start.
		n, ok := newestSegment(d.o)
		if !ok {
			return fmt.Errorf("no data file found after a write")
		}
		newest = n
	} else {
		for {
			if _, err := os.Stat(segmentPath(d.o, newest+1)); err != nil {
				break
			}
			newest++
		}
	}
	if newest != d.fileNum || d.file == nil {
		if d.file != nil {
			d.file.Close()
			d.file = nil
		}
		f, err := os.Open(segmentPath(d.o, newest))
		if err != nil {
			return fmt.Errorf("opening the newest data file to fsync it: %w", err)
		}
		if newest != d.fileNum {
			d.synced = false
		}
		d.file, d.fileNum = f, newest
	}
	if d.emptied {
		// writeMetadata fsyncs the directory, so the new data file's
		// creation is durable too.
		if err := writeEmptyMetadata(d.o, newest); err != nil {
			return err
		}
		d.fsyncs.Add(2)
		d.emptied, d.synced = false, true
	}
	if !d.synced {
		if err := syncDir(d.o.DataPath); err != nil {
			return err
		}
		d.fsyncs.Add(1)
		d.synced = true
	}
	d.fsyncs.Add(1)
	return d.file.Sync()
}

// wasEmptied hears that Empty removed the queue's files and its metadata.
// d.mu must be held.
func (d *durableCommitter) wasEmptied() {
	if d.file != nil {
		d.file.Close()
		d.file = nil
	}
	d.emptied, d.synced = true, false
}

func (d *durableCommitter) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file != nil {
		d.file.Close()
		d.file = nil
	}
}

// ensureMetadata gives a queue with no metadata file one naming file 0,
// so records written to file 0 before go-diskqueue first syncs are found
// after a crash.
func ensureMetadata(o Options) error {
	if _, err := os.Stat(metadataPath(o)); !os.IsNotExist(err) {
		return nil
	}
	return writeEmptyMetadata(o, 0)
}

// writeEmptyMetadata durably writes go-diskqueue metadata for an empty
// queue positioned at the start of file n (atomically, the directory
// synced: see writeMetadata).
func writeEmptyMetadata(o Options, n int64) error {
	if err := writeMetadata(o, metadata{readFile: n, writeFile: n}); err != nil {
		return fmt.Errorf("writing disk queue metadata %s: %w", filepath.Base(metadataPath(o)), err)
	}
	return nil
}

func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return err
	}
	err = dir.Sync()
	if closeErr := dir.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("fsyncing directory %s: %w", path, err)
	}
	return nil
}
