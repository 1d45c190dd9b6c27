package diskqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A disk-queue record holds one entry (an nsqd v1.3.0 record: one encoded
// message) or a batch of entries (a wren record). Every record wren writes
// is a batch:
//
//	offset  size  field
//	0       4     magic 0xFF 'W' 'R' 'B'
//	4       4     CRC-32C (Castagnoli) of every byte from offset 8 on
//	8       1     version, 1
//	9       1     flags, 0 (a record with unknown flags is refused)
//	10      2     reserved, 0
//	12      4     entry count
//	16      ...   entries: [uint32 size][size bytes], count times
//
// All integers are big-endian. An nsqd record starts with its message's
// int64 timestamp, so its first byte is never 0xFF while timestamps are
// positive: the first byte tells the two kinds apart, and a damaged nsqd
// record that happens to start with 0xFF fails the batch checks instead of
// being delivered.
const (
	recordMagic       = "\xffWRB"
	recordVersion     = 1
	RecordHeaderSize  = 16
	EntryHeaderSize   = 4
	recordCountOffset = 12
	recordCRCOffset   = 4
	recordCRCFrom     = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrDamagedRecord is wrapped by every error DecodeRecord returns.
var ErrDamagedRecord = errors.New("damaged disk-queue record")

// BeginRecord appends an empty batch record's header to dst. Append
// entries with AppendEntry, then seal the record with FinishRecord.
func BeginRecord(dst []byte) []byte {
	var header [RecordHeaderSize]byte
	copy(header[:], recordMagic)
	return append(dst, header[:]...)
}

// AppendEntry appends one entry of size bytes' header to a record begun
// with BeginRecord; the caller appends the size bytes next.
func AppendEntry(dst []byte, size int) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(size))
}

// FinishRecord fills in the header of the record that occupies the whole
// of rec, which holds count entries, and returns rec.
func FinishRecord(rec []byte, count int) []byte {
	copy(rec, recordMagic)
	rec[8], rec[9], rec[10], rec[11] = recordVersion, 0, 0, 0
	binary.BigEndian.PutUint32(rec[recordCountOffset:], uint32(count))
	binary.BigEndian.PutUint32(rec[recordCRCOffset:], crc32Of(rec[recordCRCFrom:]))
	return rec
}

// IsBatch reports whether rec claims to be a wren batch record.
func IsBatch(rec []byte) bool { return len(rec) > 0 && rec[0] == recordMagic[0] }

// DecodeRecord appends rec's entries to dst. An nsqd record is one entry,
// the whole record. A batch record must pass every check (magic, checksum,
// version, flags, and entries that fill it exactly) or nothing of it is
// returned. Entries alias rec.
func DecodeRecord(rec []byte, dst [][]byte) ([][]byte, error) {
	start := len(dst)
	err := eachEntry(rec, func(entry []byte) error {
		dst = append(dst, entry)
		return nil
	})
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// eachEntry checks rec's header and calls fn for each of its entries in
// turn. An error from fn, or damage found after some entries, stops it;
// the caller discards what fn was given.
func eachEntry(rec []byte, fn func(entry []byte) error) error {
	if !IsBatch(rec) {
		if len(rec) == 0 {
			return fmt.Errorf("%w: empty", ErrDamagedRecord)
		}
		return fn(rec)
	}
	if len(rec) < RecordHeaderSize {
		return fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrDamagedRecord, len(rec))
	}
	if string(rec[:4]) != recordMagic {
		return fmt.Errorf("%w: bad magic %q", ErrDamagedRecord, rec[:4])
	}
	want := binary.BigEndian.Uint32(rec[recordCRCOffset:])
	if got := crc32Of(rec[recordCRCFrom:]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrDamagedRecord, got, want)
	}
	if rec[8] != recordVersion {
		return fmt.Errorf("%w: unknown version %d", ErrDamagedRecord, rec[8])
	}
	if rec[9] != 0 || rec[10] != 0 || rec[11] != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrDamagedRecord, rec[9:12])
	}
	count := binary.BigEndian.Uint32(rec[recordCountOffset:])
	rest := rec[RecordHeaderSize:]
	// Each entry takes at least its header, so a count the bytes cannot
	// hold is refused before anything is allocated for it.
	if uint64(count)*EntryHeaderSize > uint64(len(rest)) {
		return fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrDamagedRecord, count, len(rest))
	}
	for i := uint32(0); i < count; i++ {
		if len(rest) < EntryHeaderSize {
			return fmt.Errorf("%w: entry %d of %d truncated", ErrDamagedRecord, i, count)
		}
		size := uint64(binary.BigEndian.Uint32(rest))
		rest = rest[EntryHeaderSize:]
		if size > uint64(len(rest)) {
			return fmt.Errorf("%w: entry %d of %d claims %d bytes, %d left", ErrDamagedRecord, i, count, size, len(rest))
		}
		if err := fn(rest[:size:size]); err != nil {
			return err
		}
		rest = rest[size:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the last entry", ErrDamagedRecord, len(rest))
	}
	return nil
}

// recordEntryCount is how many entries a record of size bytes that
// starts with header claims to hold, read from its header without checking
// the checksum: 1 for an nsqd record. It is used to count a queue's depth
// when it opens, where reading every byte would cost too much;
// DecodeRecord checks it all later. A damaged count is held to what the
// record's size can hold.
func recordEntryCount(header []byte, size int) int64 {
	if !IsBatch(header) || len(header) < RecordHeaderSize || size < RecordHeaderSize {
		return 1
	}
	claimed := int64(binary.BigEndian.Uint32(header[recordCountOffset:]))
	return min(claimed, int64(size-RecordHeaderSize)/EntryHeaderSize)
}

func crc32Of(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
