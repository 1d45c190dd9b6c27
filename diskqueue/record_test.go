package diskqueue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"wren/protocol"
)

func testMessage(i int) *protocol.Message {
	m := &protocol.Message{Timestamp: int64(1_700_000_000_000_000_000 + i), Attempts: uint16(i % 7)}
	copy(m.ID[:], fmt.Sprintf("%016d", i))
	m.Body = []byte(fmt.Sprintf("body-%06d", i))
	return m
}

// batchRecord encodes msgs as one batch record.
func batchRecord(msgs ...*protocol.Message) []byte {
	rec := BeginRecord(nil)
	for _, m := range msgs {
		rec = AppendEntry(rec, m.EncodedSize())
		rec = protocol.AppendMessage(rec, m)
	}
	return FinishRecord(rec, len(msgs))
}

func TestRecordRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 200} {
		var msgs []*protocol.Message
		for i := 0; i < n; i++ {
			msgs = append(msgs, testMessage(i))
		}
		rec := batchRecord(msgs...)
		entries, err := DecodeRecord(rec, nil)
		if err != nil {
			t.Fatalf("%d messages: %v", n, err)
		}
		if len(entries) != n {
			t.Fatalf("%d messages: decoded %d entries", n, len(entries))
		}
		for i, e := range entries {
			if want := protocol.AppendMessage(nil, msgs[i]); !bytes.Equal(e, want) {
				t.Fatalf("entry %d = %q, want %q", i, e, want)
			}
		}
	}
}

// An nsqd v1.3.0 record is one encoded message, read as one entry.
func TestRecordFromNSQD(t *testing.T) {
	rec := protocol.AppendMessage(nil, testMessage(3))
	entries, err := DecodeRecord(rec, nil)
	if err != nil || len(entries) != 1 || !bytes.Equal(entries[0], rec) {
		t.Fatalf("DecodeRecord(nsqd record) = %q, %v", entries, err)
	}
}

// Every single-byte change of a batch record is detected.
func TestRecordDamageDetected(t *testing.T) {
	rec := batchRecord(testMessage(1), testMessage(2), testMessage(3))
	for i := range rec {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			damaged := bytes.Clone(rec)
			damaged[i] ^= flip
			if damaged[0] != 0xff {
				continue // no longer claims to be a batch: read as an nsqd record
			}
			entries, err := DecodeRecord(damaged, nil)
			if !errors.Is(err, ErrDamagedRecord) || len(entries) != 0 {
				t.Fatalf("byte %d ^ %#x: got %d entries, err %v", i, flip, len(entries), err)
			}
		}
	}
	for cut := 1; cut < len(rec); cut++ {
		if entries, err := DecodeRecord(rec[:cut], nil); err == nil || len(entries) != 0 {
			t.Fatalf("cut at %d: got %d entries, err %v", cut, len(entries), err)
		}
	}
}

// A record whose checksum is right but whose structure is not (as a
// future version or a bug might write) is refused too.
func TestRecordStructureChecked(t *testing.T) {
	reseal := func(rec []byte) []byte {
		binary.BigEndian.PutUint32(rec[recordCRCOffset:], crc32Of(rec[recordCRCFrom:]))
		return rec
	}
	cases := map[string]func([]byte) []byte{
		"version 2":      func(r []byte) []byte { r[8] = 2; return reseal(r) },
		"flags":          func(r []byte) []byte { r[9] = 1; return reseal(r) },
		"count too high": func(r []byte) []byte { binary.BigEndian.PutUint32(r[12:], 3); return reseal(r) },
		"count too low":  func(r []byte) []byte { binary.BigEndian.PutUint32(r[12:], 1); return reseal(r) },
		"huge count":     func(r []byte) []byte { binary.BigEndian.PutUint32(r[12:], 1<<31); return reseal(r) },
		"entry too long": func(r []byte) []byte { binary.BigEndian.PutUint32(r[16:], 1<<20); return reseal(r) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			rec := damage(batchRecord(testMessage(1), testMessage(2)))
			if entries, err := DecodeRecord(rec, nil); !errors.Is(err, ErrDamagedRecord) || len(entries) != 0 {
				t.Fatalf("got %d entries, err %v", len(entries), err)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(batchRecord(testMessage(1), testMessage(2)))
	f.Add(batchRecord())
	f.Add(protocol.AppendMessage(nil, testMessage(9)))
	f.Add([]byte("\xffWRB"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		entries, err := DecodeRecord(rec, nil)
		if err != nil {
			if len(entries) != 0 {
				t.Fatalf("error %v with %d entries", err, len(entries))
			}
			return
		}
		if !IsBatch(rec) {
			return
		}
		// What decodes re-encodes to the same bytes.
		again := BeginRecord(nil)
		for _, e := range entries {
			again = append(AppendEntry(again, len(e)), e...)
		}
		if !bytes.Equal(FinishRecord(again, len(entries)), rec) {
			t.Fatalf("re-encoding %q gave %q", rec, again)
		}
	})
}

func BenchmarkRecordEncode(b *testing.B) {
	msgs := make([]*protocol.Message, 200)
	for i := range msgs {
		msgs[i] = testMessage(i)
		msgs[i].Body = bytes.Repeat([]byte{'x'}, 100)
	}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(batchRecord(msgs...))))
	for b.Loop() {
		rec := BeginRecord(buf[:0])
		for _, m := range msgs {
			rec = protocol.AppendMessage(AppendEntry(rec, m.EncodedSize()), m)
		}
		FinishRecord(rec, len(msgs))
	}
}

func BenchmarkRecordDecode(b *testing.B) {
	msgs := make([]*protocol.Message, 200)
	for i := range msgs {
		msgs[i] = testMessage(i)
		msgs[i].Body = bytes.Repeat([]byte{'x'}, 100)
	}
	rec := batchRecord(msgs...)
	entries := make([][]byte, 0, 200)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		var err error
		if entries, err = DecodeRecord(rec, entries[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCountEntries counts the messages in a data file of any content, as
// a queue does when it opens: it must neither fail nor claim more messages
// than the file's records could hold.
func FuzzCountEntries(f *testing.F) {
	f.Add(append(binary.BigEndian.AppendUint32(nil, uint32(len(batchRecord(testMessage(1))))), batchRecord(testMessage(1))...), int64(0))
	f.Add([]byte("\x00\x00\x00\x20"+string(protocol.AppendMessage(nil, testMessage(2)))), int64(0))
	f.Add([]byte("\xff\xff\xff\xff"), int64(3))
	f.Fuzz(func(t *testing.T, file []byte, readPos int64) {
		dir := t.TempDir()
		o := Options{Name: queueName, DataPath: dir, MinRecordSize: 1, MaxRecordSize: 1 << 20}
		if err := os.WriteFile(segmentFile(dir, 0), file, 0o600); err != nil {
			t.Fatal(err)
		}
		meta := fmt.Sprintf("0\n0,%d\n0,%d\n", readPos, len(file))
		if err := os.WriteFile(metaFile(dir), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
		count, _, _ := countEntries(o)
		// A batch record claims at most one message per 4 bytes it holds.
		if count < 0 || count > int64(len(file)) {
			t.Fatalf("%d messages counted in %d bytes", count, len(file))
		}
	})
}
