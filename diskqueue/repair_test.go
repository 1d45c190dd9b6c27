package diskqueue

import (
	"fmt"
	"os"
	"testing"
)

// repairOptions are backlog options with small segment files, so a
// thousand messages span many of them.
func repairOptions(t *testing.T, dir string) Options {
	o := backlogOptions(t, dir)
	o.MaxBytesPerFile = 2000
	o.SyncEvery = 1000
	return o
}

// TestMetadataRebuiltFromSegments writes 1,000 messages, damages the
// metadata the ways a crash, a bad disk or a hand edit do, and reopens the
// queue: every message comes back, in order, and the queue keeps working.
func TestMetadataRebuiltFromSegments(t *testing.T) {
	const batches, perBatch = 100, 10
	const total = batches * perBatch
	cases := []struct {
		name   string
		damage func(t *testing.T, o Options, last int64)
	}{
		{"missing", func(t *testing.T, o Options, _ int64) {
			if err := os.Remove(metadataPath(o)); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, o Options, _ int64) {
			writeMeta(t, o.DataPath, "\x00\x17garbage, not positions\n")
		}},
		{"empty", func(t *testing.T, o Options, _ int64) { writeMeta(t, o.DataPath, "") }},
		{"truncated", func(t *testing.T, o Options, _ int64) { writeMeta(t, o.DataPath, "1000\n0,0\n") }},
		{"read file after the write file", func(t *testing.T, o Options, last int64) {
			writeMeta(t, o.DataPath, fmt.Sprintf("%d\n%d,0\n%d,0\n", total, last+5, last))
		}},
		{"positions past the file ends", func(t *testing.T, o Options, last int64) {
			writeMeta(t, o.DataPath, fmt.Sprintf("%d\n0,99999999\n%d,99999999\n", total, last))
		}},
		{"write file behind the segments", func(t *testing.T, o Options, last int64) {
			writeMeta(t, o.DataPath, fmt.Sprintf("%d\n0,0\n%d,0\n", total, last/2))
		}},
		{"read position inside a record", func(t *testing.T, o Options, last int64) {
			info, err := os.Stat(segmentPath(o, last))
			if err != nil {
				t.Fatal(err)
			}
			writeMeta(t, o.DataPath, fmt.Sprintf("%d\n0,7\n%d,%d\n", total, last, info.Size()))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := repairOptions(t, dir)
			writeBatches(t, o, batches, perBatch)
			segments, err := listSegments(o)
			if err != nil || len(segments) < 10 {
				t.Fatalf("segments %v, %v; want at least 10", segments, err)
			}
			tc.damage(t, o, segments[len(segments)-1])

			b := openBacklog(t, o)
			wantBacklogDepth(t, b, total)
			takeN(t, b, 0, total)
			wantBacklogDepth(t, b, 0)
			if records, files := b.Damaged(); records != 0 || files != 0 {
				t.Fatalf("Damaged() = %d records, %d files; want none", records, files)
			}
			if err := b.Put(messages(total, total+1)); err != nil {
				t.Fatal(err)
			}
			takeN(t, b, total, 1)
		})
	}
}

// TestMetadataRebuildKeepsReadPosition: a queue read partway whose
// metadata is inconsistent only at its write end keeps its read position,
// so nothing already taken is delivered again.
func TestMetadataRebuildKeepsReadPosition(t *testing.T) {
	dir := t.TempDir()
	o := repairOptions(t, dir)
	writeBatches(t, o, 100, 10)
	b := OpenBacklog(o)
	takeN(t, b, 0, 20) // two records of file 0
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(metadataPath(o))
	if err != nil {
		t.Fatal(err)
	}
	md, err := parseMetadata(data)
	if err != nil || md.readFile != 0 || md.readPos == 0 {
		t.Fatalf("metadata after reading 20: %+v, %v", md, err)
	}
	md.writePos = 99999999
	writeMeta(t, dir, md.String())

	b = openBacklog(t, o)
	wantBacklogDepth(t, b, 980)
	takeN(t, b, 20, 980)
}

// TestMetadataRebuildSetsAsideUnreadableFiles: with the metadata gone, a
// segment with nothing readable is renamed .bad and counted, one missing
// in the middle is skipped over, and every record of the others comes
// back.
func TestMetadataRebuildSetsAsideUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	o := repairOptions(t, dir)
	o.MaxBytesPerFile = 1 // one record per file
	writeBatches(t, o, 10, 10)
	if err := os.Remove(metadataPath(o)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segmentPath(o, 3), []byte("\xff\xff\xff\xffnot a record"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(segmentPath(o, 6)); err != nil {
		t.Fatal(err)
	}

	b := openBacklog(t, o)
	wantBacklogDepth(t, b, 80)
	for _, from := range []int{0, 10, 20, 40, 50, 70, 80, 90} {
		takeN(t, b, from, 10)
	}
	wantBacklogDepth(t, b, 0)
	if _, files := b.Damaged(); files != 1 {
		t.Fatalf("Damaged() files = %d, want 1", files)
	}
	if _, err := os.Stat(segmentPath(o, 3) + ".bad"); err != nil {
		t.Fatal("the unreadable file was not set aside:", err)
	}
}

// TestMetadataConsistentLeftAlone: metadata that agrees with the segments
// is not rewritten.
func TestMetadataConsistentLeftAlone(t *testing.T) {
	dir := t.TempDir()
	o := repairOptions(t, dir)
	writeBatches(t, o, 100, 10)
	before, err := os.ReadFile(metadataPath(o))
	if err != nil {
		t.Fatal(err)
	}
	if n := repairMetadata(o, queueLogger(o)); n != 0 {
		t.Fatalf("set aside %d files", n)
	}
	after, _ := os.ReadFile(metadataPath(o))
	if string(after) != string(before) {
		t.Fatalf("metadata rewritten: %q, was %q", after, before)
	}
}

func TestParseMetadata(t *testing.T) {
	good := metadata{depth: 5, readFile: 1, readPos: 20, writeFile: 3, writePos: 400}
	if md, err := parseMetadata([]byte(good.String())); err != nil || md != good {
		t.Fatalf("parseMetadata(%q) = %+v, %v", good.String(), md, err)
	}
	for _, bad := range []string{"", "5\n1,20\n3,400", "5\n1,20\n3,400\n\n", "-1\n0,0\n0,0\n",
		"5\n1,20\n3,+400\n", "5\n1;20\n3,400\n", " 5\n1,20\n3,400\n", "05\n1,20\n3,400\n",
		"99999999999999999999\n0,0\n0,0\n"} {
		if md, err := parseMetadata([]byte(bad)); err == nil {
			t.Errorf("parseMetadata(%q) = %+v, want an error", bad, md)
		}
	}
}

// FuzzParseMetadata: whatever parses prints back to the same bytes.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte("5\n1,20\n3,400\n"))
	f.Add([]byte("0\n0,0\n0,0\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := parseMetadata(data)
		if err != nil {
			return
		}
		if md.String() != string(data) {
			t.Fatalf("parseMetadata(%q) = %+v, which prints as %q", data, md, md.String())
		}
	})
}

// TestMetadataRebuildAfterTornTail: with the metadata gone and half a
// record at the end of the newest file, every whole record comes back and
// new records are written to a new file, not after the torn bytes.
func TestMetadataRebuildAfterTornTail(t *testing.T) {
	dir := t.TempDir()
	o := repairOptions(t, dir)
	writeBatches(t, o, 100, 10)
	segments, err := listSegments(o)
	if err != nil {
		t.Fatal(err)
	}
	last := segmentPath(o, segments[len(segments)-1])
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 1, 0, 0xff, 'W'}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(metadataPath(o)); err != nil {
		t.Fatal(err)
	}

	b := openBacklog(t, o)
	wantBacklogDepth(t, b, 1000)
	if err := b.Put(messages(1000, 1010)); err != nil {
		t.Fatal(err)
	}
	takeN(t, b, 0, 1010)
}
