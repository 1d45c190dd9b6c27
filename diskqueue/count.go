package diskqueue

import (
	"errors"
	"fmt"
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
	scan, err := scanSegment(o, path, from, nil)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return scan.messages, err
}
