package diskqueue

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// countEntries counts the messages a queue holds on disk, from its read
// position to the end of its last file, the way go-diskqueue will read
// them: a record whose size is out of bounds, or that is cut short, ends
// its file. Only each record's size and header are read; the checksums
// are checked as records are taken.
// It also returns the number of the file being written.
func countEntries(o Options) (count, writeFile int64, err error) {
	data, err := os.ReadFile(metadataPath(o))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var depth, readFile, readPos, writePos int64
	if _, err := fmt.Sscanf(string(data), "%d\n%d,%d\n%d,%d\n", &depth, &readFile, &readPos, &writeFile, &writePos); err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", metadataPath(o), err)
	}
	var total int64
	for n := readFile; n <= writeFile; n++ {
		from := int64(0)
		if n == readFile {
			from = readPos
		}
		count, err := countFileEntries(o, segmentPath(o, n), from)
		total += count
		if err != nil {
			return total, writeFile, err
		}
	}
	return total, writeFile, nil
}

func segmentPath(o Options, n int64) string {
	return filepath.Join(o.DataPath, fmt.Sprintf("%s.diskqueue.%06d.dat", o.Name, n))
}

func countFileEntries(o Options, path string, from int64) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var count int64
	var header [4 + RecordHeaderSize]byte
	for {
		if _, err := io.ReadFull(r, header[:4]); err != nil {
			return count, nil // the end of the file, or a cut-short size
		}
		size := int32(binary.BigEndian.Uint32(header[:4]))
		if size < o.MinRecordSize || size > o.MaxRecordSize {
			return count, nil
		}
		peek := min(int(size), RecordHeaderSize)
		if _, err := io.ReadFull(r, header[4:4+peek]); err != nil {
			return count, nil
		}
		if _, err := r.Discard(int(size) - peek); err != nil {
			return count, nil
		}
		count += recordEntryCount(header[4:4+peek], int(size))
	}
}
