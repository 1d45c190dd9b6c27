package diskqueue

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// These tests damage a queue's files the way crashes and bad disks do and
// check what go-diskqueue makes of them on the next Open: it must neither
// panic nor hang, must hand out every intact record it can reach, and must
// keep taking new records.

// writeMeta replaces the test queue's metadata file in dir.
func writeMeta(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(metaFile(dir), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// putAndReadFresh checks that the queue still works: a record put now is
// the next one read.
func (q *testQueue) putAndReadFresh() {
	q.t.Helper()
	const fresh = 999999
	q.put(record(fresh))
	q.wantRecords(fresh)
	q.wantNothing()
	q.wantDepth(0)
}

// TestRecordSizeOutOfBoundsOnDisk overwrites the length prefix of one
// record with a size outside [MinRecordSize, MaxRecordSize]. go-diskqueue
// cannot tell where the next record starts, so it hands out the records
// before the bad one, renames that file to .bad and goes on with the next.
func TestRecordSizeOutOfBoundsOnDisk(t *testing.T) {
	const perFile, files = 4, 3
	cases := []struct {
		name       string
		size       func(o Options) int32
		file, slot int // which record to damage
	}{
		{"too small", func(o Options) int32 { return o.MinRecordSize - 1 }, 1, 1},
		{"zero", func(Options) int32 { return 0 }, 1, 0},
		{"negative", func(Options) int32 { return -1 }, 1, 2},
		{"too large", func(o Options) int32 { return o.MaxRecordSize + 1 }, 1, 3},
		{"first file", func(o Options) int32 { return o.MaxRecordSize + 1 }, 0, 1},
		// In the file still being written, go-diskqueue also moves
		// writing on to a new file.
		{"file being written", func(o Options) int32 { return o.MaxRecordSize + 1 }, files - 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(t, dir)
			o.MaxBytesPerFile = perFile * frameSize
			q := openQueue(t, o)
			q.putRange(0, perFile*files)
			q.close()

			f, err := os.OpenFile(segmentFile(dir, tc.file), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			var prefix [4]byte
			binary.BigEndian.PutUint32(prefix[:], uint32(tc.size(o)))
			if _, err := f.WriteAt(prefix[:], int64(tc.slot*frameSize)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			var want []int
			for i := 0; i < perFile*files; i++ {
				if i/perFile != tc.file || i%perFile < tc.slot {
					want = append(want, i)
				}
			}
			q = openQueue(t, o)
			q.wantRecords(want...)
			q.wantNothing()
			// The metadata counted the skipped records; go-diskqueue
			// resets the depth once the reader reaches the end.
			q.wantDepth(0)
			bad := segmentFile(dir, tc.file) + ".bad"
			if _, err := os.Stat(bad); err != nil {
				t.Errorf("damaged file not kept as %s: %v", filepath.Base(bad), err)
			}
			q.putAndReadFresh()

			// The bad file stays out of the queue after a reopen.
			q.close()
			q = openQueue(t, o)
			q.wantDepth(0)
			q.wantNothing()
		})
	}
}

// copyQueueFiles copies the test queue's files from src to dst: what a
// process killed at this moment leaves on disk (the page cache survives a
// process's death).
func copyQueueFiles(t *testing.T, src, dst string) {
	t.Helper()
	for _, from := range queueFiles(t, src) {
		in, err := os.Open(from)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, filepath.Base(from)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTruncatedLastSegment simulates a crash that leaves the last segment
// file shorter than the metadata says, cut somewhere in a record: reopening
// hands out every whole record before the cut and carries on.
func TestTruncatedLastSegment(t *testing.T) {
	const perFile, n = 4, 10 // files 0 and 1 full, file 2 holds records 8 and 9
	cases := []struct {
		name string
		cut  int64 // length of file 2 after the crash
		want []int
	}{
		{"in the second record's length prefix", frameSize + 2, span(0, 9)},
		{"in the second record's body", frameSize + 4 + recordSize/2, span(0, 9)},
		{"one byte short", 2*frameSize - 1, span(0, 9)},
		{"in the first record", 3, span(0, 8)},
		{"empty file", 0, span(0, 8)},
		{"at a record boundary", frameSize, span(0, 9)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			live, crashed := t.TempDir(), t.TempDir()
			o := testOptions(t, live)
			o.MaxBytesPerFile = perFile * frameSize
			q := openQueue(t, o)
			q.putRange(0, n)
			// With SyncEvery 1 go-diskqueue syncs at the top of its loop
			// after each write, before it answers Depth: once Depth
			// answers, the metadata on disk covers every record.
			q.wantDepth(n)
			copyQueueFiles(t, live, crashed)

			last := segmentFile(crashed, n/perFile)
			if err := os.Truncate(last, tc.cut); err != nil {
				t.Fatal(err)
			}

			o.DataPath = crashed
			r := openQueue(t, o)
			r.wantRecords(tc.want...)
			r.wantNothing()
			r.wantDepth(0)
			r.putAndReadFresh()

			// Nothing is handed out twice after a clean reopen.
			r.close()
			r = openQueue(t, o)
			r.wantDepth(0)
			r.wantNothing()
		})
	}
}

// TestStaleMetadata opens a queue whose metadata disagrees with its files.
// Five records of frameSize bytes sit in file 0.
func TestStaleMetadata(t *testing.T) {
	const n = 5
	size := n * frameSize
	cases := []struct {
		name string
		meta string // depth, read file,position, write file,position
		want []int  // the old records still handed out
	}{
		{"consistent", fmt.Sprintf("%d\n0,0\n0,%d\n", n, size), span(0, n)},
		// A crash between a write and the metadata sync: go-diskqueue
		// writes on in a new file and reads the old one to its real end.
		{"behind the data", fmt.Sprintf("3\n0,0\n0,%d\n", 3*frameSize), span(0, n)},
		// From here on the metadata disagrees with the files and is
		// rebuilt from them (repair.go): every record is read again.
		{"read position past the end of the data", fmt.Sprintf("%d\n0,%d\n0,%d\n", n, 10*size, 20*size), span(0, n)},
		{"write position past the end of the data", fmt.Sprintf("%d\n0,0\n0,%d\n", n, 20*size), span(0, n)},
		// The write position before the end of file 0 moves writing to
		// file 1, which makes file 0 complete: it is read from the read
		// position to its end.
		{"read position past the write position", fmt.Sprintf("%d\n0,%d\n0,%d\n", n, 2*frameSize, frameSize), span(2, n)},
		// go-diskqueue v1.1.0 alone spins here without ever reaching its
		// select: the read of missing file 3 fails, handleReadError moves
		// on to file 4, 5, ... and, with readPos < writePos,
		// checkTailCorruption never resets the positions.
		{"read file after the write file", fmt.Sprintf("%d\n3,0\n0,%d\n", n, size), span(0, n)},
		{"read file missing", fmt.Sprintf("%d\n3,0\n3,%d\n", n, size), span(0, n)},
		{"write file missing", fmt.Sprintf("%d\n0,0\n1,%d\n", n, frameSize), span(0, n)},
		{"negative depth", fmt.Sprintf("-7\n0,0\n0,%d\n", size), span(0, n)},
		{"truncated", "5\n0,0\n", span(0, n)},
		{"garbage", "not metadata at all\n", span(0, n)},
		{"empty", "", span(0, n)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(t, dir)
			q := openQueue(t, o)
			q.putRange(0, n)
			q.close()
			if fi, err := os.Stat(segmentFile(dir, 0)); err != nil || fi.Size() != int64(size) {
				t.Fatalf("file 0 after %d puts: %v, %v; want %d bytes", n, fi, err, size)
			}
			writeMeta(t, dir, tc.meta)

			q = openQueue(t, o)
			q.wantRecords(tc.want...)
			q.wantNothing()
			q.wantDepth(0)
			q.putAndReadFresh()
		})
	}
}
