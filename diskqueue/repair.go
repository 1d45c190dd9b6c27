package diskqueue

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"wren/internal/atomicfile"
)

// go-diskqueue trusts its metadata file: with the file missing it writes
// over segment 0 from its first byte, with it unparsable it starts from
// whatever Fscanf filled in, with a read file after the write file it
// spins for ever, and with a write position past its file's end it leaves
// a hole that later reads as damage. Before go-diskqueue opens a queue,
// repairMetadata checks the metadata against the segment files and, when
// they disagree, rebuilds it from the segments, so every whole record on
// disk is read again: some may be delivered twice, none is dropped.

// metadata is a queue's positions as go-diskqueue keeps them in
// <name>.diskqueue.meta.dat: its depth in records, then the read and
// write file numbers and byte offsets.
type metadata struct {
	depth               int64
	readFile, readPos   int64
	writeFile, writePos int64
}

func (m metadata) String() string {
	return fmt.Sprintf("%d\n%d,%d\n%d,%d\n", m.depth, m.readFile, m.readPos, m.writeFile, m.writePos)
}

// parseMetadata reads a metadata file as go-diskqueue writes it, and
// refuses anything else: a negative number, a missing or extra field, a
// stray byte.
func parseMetadata(data []byte) (metadata, error) {
	text, ok := strings.CutSuffix(string(data), "\n")
	if !ok {
		return metadata{}, errors.New("no final newline")
	}
	lines := strings.Split(text, "\n")
	if len(lines) != 3 {
		return metadata{}, fmt.Errorf("%d lines, want 3", len(lines))
	}
	var m metadata
	fields := []*int64{&m.depth, &m.readFile, &m.readPos, &m.writeFile, &m.writePos}
	var values []string
	values = append(values, lines[0])
	for _, line := range lines[1:] {
		file, pos, ok := strings.Cut(line, ",")
		if !ok {
			return metadata{}, fmt.Errorf("line %q is not file,position", line)
		}
		values = append(values, file, pos)
	}
	for i, v := range values {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return metadata{}, fmt.Errorf("field %d, %q, is not a number of at least 0", i+1, v)
		}
		*fields[i] = n
	}
	return m, nil
}

// segmentScan is what a walk over one segment file found.
type segmentScan struct {
	messages int64 // entries of the whole records read
	records  int64 // whole records read: go-diskqueue's unit of depth
	end      int64 // offset just past the last whole record
	size     int64 // the file's size
}

// scanSegment walks the records of a segment file from offset from, the
// way go-diskqueue will read them: a record whose size is out of bounds,
// or that is cut short, ends the walk. Only each record's size and header
// are read. atRecord, if not nil, is called with each record's offset.
func scanSegment(o Options, path string, from int64, atRecord func(offset int64)) (segmentScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return segmentScan{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return segmentScan{}, err
	}
	scan := segmentScan{end: from, size: info.Size()}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return scan, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var header [4 + RecordHeaderSize]byte
	for {
		if _, err := io.ReadFull(r, header[:4]); err != nil {
			return scan, nil // the end of the file, or a cut-short size
		}
		size := int32(binary.BigEndian.Uint32(header[:4]))
		if size < o.MinRecordSize || size > o.MaxRecordSize {
			return scan, nil
		}
		peek := min(int(size), RecordHeaderSize)
		if _, err := io.ReadFull(r, header[4:4+peek]); err != nil {
			return scan, nil
		}
		if _, err := r.Discard(int(size) - peek); err != nil {
			return scan, nil
		}
		if atRecord != nil {
			atRecord(scan.end)
		}
		scan.messages += recordEntryCount(header[4:4+peek], int(size))
		scan.records++
		scan.end += 4 + int64(size)
	}
}

// listSegments returns the numbers of the queue's segment files, oldest
// first.
func listSegments(o Options) ([]int64, error) {
	entries, err := os.ReadDir(o.DataPath)
	if err != nil {
		return nil, err
	}
	prefix := o.Name + ".diskqueue."
	var out []int64
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if digits, ok = strings.CutSuffix(digits, ".dat"); !ok {
			continue
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n < 0 || fmt.Sprintf("%06d", n) != digits {
			continue // the metadata file, a .bad file, another queue's
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// repairMetadata checks the queue's metadata against its segment files
// and rebuilds it from them when it is missing, unparsable or
// inconsistent. It returns how many segment files it set aside as
// unreadable.
func repairMetadata(o Options, logger *slog.Logger) (quarantined int64) {
	path := metadataPath(o)
	data, readErr := os.ReadFile(path)
	var problem string
	var md metadata
	mdErr := readErr
	switch {
	case errors.Is(readErr, os.ErrNotExist):
		problem = "metadata file missing"
	case readErr != nil:
		logger.Error("reading disk queue metadata", "metadata", path, "err", readErr)
		return 0
	default:
		if md, mdErr = parseMetadata(data); mdErr != nil {
			problem = "metadata unparsable: " + mdErr.Error()
		} else {
			problem = inconsistency(o, md)
		}
	}
	if problem == "" {
		return 0
	}
	segments, err := listSegments(o)
	if err != nil {
		logger.Error("listing disk queue segment files", "err", err)
		return 0
	}
	if readErr != nil && len(segments) == 0 {
		return 0 // a new queue
	}
	var keep *metadata
	if mdErr == nil {
		keep = &md
	}
	return rebuildMetadata(o, logger, problem, keep, segments)
}

// inconsistency says what in md go-diskqueue cannot cope with, given the
// segment files on disk, or "" if nothing.
func inconsistency(o Options, md metadata) string {
	switch {
	case md.readFile > md.writeFile:
		return "read file after the write file"
	case md.readFile == md.writeFile && md.readPos > md.writePos:
		return "read position after the write position"
	}
	sizes := map[int64]int64{}
	// Files normally span a few numbers; a longer span is checked by
	// listing the directory rather than by a stat per number.
	if md.writeFile-md.readFile > 64 {
		segments, err := listSegments(o)
		if err != nil {
			return ""
		}
		if int64(len(segments)) < md.writeFile-md.readFile {
			return "segment files missing between the read and write files"
		}
	}
	for n := md.readFile; n <= md.writeFile; n++ {
		info, err := os.Stat(segmentPath(o, n))
		if err != nil {
			if n == md.writeFile && md.writePos == 0 {
				continue // not created yet
			}
			return fmt.Sprintf("segment file %d missing", n)
		}
		sizes[n] = info.Size()
	}
	if _, err := os.Stat(segmentPath(o, md.writeFile+1)); err == nil {
		return "segment files after the write file"
	}
	if size, ok := sizes[md.readFile]; ok && md.readPos > size {
		return "read position past the end of its file"
	}
	if _, ok := sizes[md.readFile]; ok && md.readPos > 0 {
		if start, end := recordBoundary(o, md.readFile, md.readPos); !start && !end {
			// go-diskqueue would read a size from the middle of a record and
			// set the rest of the file aside.
			return "read position not at the start of a record"
		}
	}
	if size, ok := sizes[md.writeFile]; ok && md.writePos > size {
		return "write position past the end of its file"
	}
	return ""
}

// rebuildMetadata writes metadata that reads every whole record in the
// segment files, keeping old's read position if it is a record boundary
// in the oldest file. Files with nothing readable are set aside as .bad;
// the rest are renumbered to close gaps, as go-diskqueue reads file
// numbers in sequence. It returns the number of files set aside.
func rebuildMetadata(o Options, logger *slog.Logger, problem string, old *metadata, segments []int64) (quarantined int64) {
	var kept []int64
	var scans []segmentScan
	for _, n := range segments {
		path := segmentPath(o, n)
		scan, err := scanSegment(o, path, 0, nil)
		switch {
		case err != nil || (scan.records == 0 && scan.size > 0):
			bad, renameErr := atomicfile.SetAside(path)
			quarantined++
			logger.Error("set aside an unreadable disk-queue file", "file", path, "renamed", bad,
				"bytes_lost", scan.size, "err", errors.Join(err, renameErr))
		case scan.size == 0:
			_ = os.Remove(path) // holds nothing; read, it would count as damage
		default:
			kept = append(kept, n)
			scans = append(scans, scan)
		}
	}
	renumbered := 0
	for i, n := range kept {
		want := kept[0] + int64(i)
		if n == want {
			continue
		}
		if err := os.Rename(segmentPath(o, n), segmentPath(o, want)); err != nil {
			logger.Error("renumbering a disk-queue file", "err", err)
			kept = kept[:i] // read what is in sequence; the rest stays on disk
			scans = scans[:i]
			break
		}
		kept[i] = want
		renumbered++
	}

	md := metadata{}
	var messages, damagedBytes int64
	if len(kept) > 0 {
		first, last := kept[0], kept[len(kept)-1]
		md.readFile, md.writeFile = first, last
		if old != nil && old.readFile == first && old.readPos > 0 && segments[0] == first {
			if scan, ok := fromBoundary(o, first, old.readPos, len(kept) == 1); ok {
				md.readPos = old.readPos
				scans[0] = scan
			}
		}
		for _, scan := range scans {
			md.depth += scan.records
			messages += scan.messages
			// go-diskqueue sets a file aside once it has read the whole
			// records before such damage; what follows it is lost.
			damagedBytes += scan.size - scan.end
		}
		tail := scans[len(scans)-1]
		md.writePos = tail.end
		if tail.end != tail.size {
			// A torn or damaged tail: write on in a new file.
			md.writeFile, md.writePos = last+1, 0
		}
	} else if len(segments) > 0 {
		md.readFile = segments[len(segments)-1] + 1
		md.writeFile = md.readFile
	}
	if err := writeMetadata(o, md); err != nil {
		logger.Error("writing rebuilt disk queue metadata", "err", err)
		return quarantined
	}
	logger.Warn("rebuilt disk queue metadata from its segment files", "problem", problem,
		"segments", len(kept), "messages", messages, "records", md.depth,
		"read_file", md.readFile, "read_pos", md.readPos, "write_file", md.writeFile, "write_pos", md.writePos,
		"files_set_aside", quarantined, "files_renumbered", renumbered, "unreadable_bytes_after_records", damagedBytes)
	return quarantined
}

// recordBoundary reports whether a record starts at pos in segment n, and
// whether pos is just past its last whole record.
func recordBoundary(o Options, n, pos int64) (start, end bool) {
	scan, err := scanSegment(o, segmentPath(o, n), 0, func(offset int64) {
		if offset == pos {
			start = true
		}
	})
	return err == nil && start, err == nil && pos == scan.end
}

// fromBoundary scans segment n from pos if pos is where a record starts
// (or, in the queue's only file, the end of its records), and reports
// whether it is. go-diskqueue fails on a read position at the end of a
// file it is not writing.
func fromBoundary(o Options, n, pos int64, only bool) (segmentScan, bool) {
	if start, end := recordBoundary(o, n, pos); !start && !(only && end) {
		return segmentScan{}, false
	}
	scan, err := scanSegment(o, segmentPath(o, n), pos, nil)
	return scan, err == nil
}

// writeMetadata replaces the metadata file atomically.
func writeMetadata(o Options, md metadata) error {
	return atomicfile.Write(metadataPath(o), []byte(md.String()))
}
