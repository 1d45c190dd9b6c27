package diskqueue

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"wren/protocol"
)

// backlogOptions are the options the broker uses, for a queue in dir.
func backlogOptions(t *testing.T, dir string) Options {
	o := testOptions(t, dir)
	o.MinRecordSize = protocol.MessageHeaderSize
	o.MaxRecordSize = MaxRecordSize(1 << 20)
	o.MaxBytesPerFile = 8 << 20
	return o
}

func openBacklog(t *testing.T, o Options) *Backlog {
	t.Helper()
	b := OpenBacklog(o)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func messages(from, to int) []protocol.Message {
	var out []protocol.Message
	for i := from; i < to; i++ {
		out = append(out, *testMessage(i))
	}
	return out
}

// takeN reads records until n messages have come, and checks they are
// messages from..from+n in order.
func takeN(t *testing.T, b *Backlog, from, n int) {
	t.Helper()
	var got []protocol.Message
	for len(got) < n {
		select {
		case rec := <-b.ReadChan():
			got = b.Take(rec, got)
		case <-time.After(waitTimeout):
			t.Fatalf("have %d of %d messages after %s", len(got), n, waitTimeout)
		}
	}
	if len(got) != n {
		t.Fatalf("took %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		want := testMessage(from + i)
		if m.ID != want.ID || m.Timestamp != want.Timestamp || m.Attempts != want.Attempts || !bytes.Equal(m.Body, want.Body) {
			t.Fatalf("message %d = %+v, want %+v", i, m, *want)
		}
	}
}

func wantBacklogDepth(t *testing.T, b *Backlog, want int64) {
	t.Helper()
	if got := b.Depth(); got != want {
		t.Fatalf("Depth() = %d, want %d", got, want)
	}
}

func TestBacklogPutTake(t *testing.T) {
	b := openBacklog(t, backlogOptions(t, t.TempDir()))
	if err := b.Put(messages(0, 200)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(messages(200, 201)); err != nil {
		t.Fatal(err)
	}
	wantBacklogDepth(t, b, 201)
	takeN(t, b, 0, 201)
	wantBacklogDepth(t, b, 0)
}

// Puts from many goroutines at once are written in groups; every message
// arrives once and each Put returns only when its messages are in the
// queue.
func TestBacklogGroupCommit(t *testing.T) {
	dir := t.TempDir()
	b := openBacklog(t, backlogOptions(t, dir))
	const writers, puts, perPut = 8, 50, 3
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 0; p < puts; p++ {
				if err := b.Put(messages(0, perPut)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	const total = writers * puts * perPut
	wantBacklogDepth(t, b, total)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the count comes from the files.
	b = openBacklog(t, backlogOptions(t, dir))
	wantBacklogDepth(t, b, total)
	var got []protocol.Message
	records := 0
	for len(got) < total {
		select {
		case rec := <-b.ReadChan():
			records++
			got = b.Take(rec, got)
		case <-time.After(waitTimeout):
			t.Fatalf("have %d of %d messages", len(got), total)
		}
	}
	if records > writers*puts {
		t.Fatalf("%d records for %d Puts", records, writers*puts)
	}
	wantBacklogDepth(t, b, 0)
}

// A message larger than RecordTarget gets a record of its own, and the
// queue's record size limit admits it.
func TestBacklogLargeMessage(t *testing.T) {
	b := openBacklog(t, backlogOptions(t, t.TempDir()))
	big := testMessage(1)
	big.Body = bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16)
	msgs := []protocol.Message{*testMessage(0), *big, *testMessage(2)}
	if err := b.Put(msgs); err != nil {
		t.Fatal(err)
	}
	var got []protocol.Message
	for len(got) < 3 {
		got = b.Take(<-b.ReadChan(), got)
	}
	if !bytes.Equal(got[1].Body, big.Body) || got[2].ID != msgs[2].ID {
		t.Fatal("messages around a large one came back wrong")
	}
}

// Records that nsqd v1.3.0 wrote (one message each, no batch header) are
// counted on open and read as single messages, before and after wren's
// own batches in the same queue.
func TestBacklogReadsNSQDRecords(t *testing.T) {
	dir := t.TempDir()
	o := backlogOptions(t, dir)
	q := Open(o)
	for i := 0; i < 5; i++ {
		if err := q.Put(protocol.AppendMessage(nil, testMessage(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	b := openBacklog(t, o)
	wantBacklogDepth(t, b, 5)
	if err := b.Put(messages(5, 10)); err != nil {
		t.Fatal(err)
	}
	wantBacklogDepth(t, b, 10)
	takeN(t, b, 0, 10)
}

// writeBatches puts batches of size messages each (numbered from 0) into
// the queue o names, one record a batch, and closes it.
func writeBatches(t *testing.T, o Options, batches, size int) {
	t.Helper()
	b := OpenBacklog(o)
	for i := 0; i < batches; i++ {
		if err := b.Put(messages(i*size, i*size+size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// A damaged batch record is skipped, counted and logged; the records
// around it are delivered, and the depth settles at zero once the queue
// is empty.
func TestBacklogSkipsDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	o := backlogOptions(t, dir)
	writeBatches(t, o, 3, 10)
	// Damage one byte of the second record's last message body.
	path := segmentPath(o, 0)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recordLen := len(data) / 3
	data[2*recordLen-2] ^= 0x20
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	b := openBacklog(t, o)
	wantBacklogDepth(t, b, 30)
	takeN(t, b, 0, 10)
	var got []protocol.Message
	for len(got) < 10 {
		got = b.Take(<-b.ReadChan(), got)
	}
	if got[0].ID != testMessage(20).ID {
		t.Fatalf("after the damaged record got %s, want %s", got[0].ID[:], testMessage(20).ID[:])
	}
	if records, files := b.Damaged(); records != 1 || files != 0 {
		t.Fatalf("Damaged() = %d records, %d files; want 1, 0", records, files)
	}
	wantBacklogDepth(t, b, 0)
}

// A record size out of bounds makes go-diskqueue set the file aside; the
// backlog counts the file and its depth settles once the queue is idle.
func TestBacklogCountsBadFiles(t *testing.T) {
	dir := t.TempDir()
	o := backlogOptions(t, dir)
	o.MaxBytesPerFile = 1 // one record per file
	writeBatches(t, o, 3, 4)
	f, err := os.OpenFile(segmentPath(o, 1), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x7f, 0xff, 0xff, 0xff}, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	b := openBacklog(t, o)
	wantBacklogDepth(t, b, 8) // the damaged file's record no longer counts
	takeN(t, b, 0, 4)
	var got []protocol.Message
	for len(got) < 4 {
		got = b.Take(<-b.ReadChan(), got)
	}
	if got[0].ID != testMessage(8).ID {
		t.Fatalf("after the bad file got %s", got[0].ID[:])
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		_, files := b.Damaged()
		if files == 1 && b.Depth() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("damaged files %d, depth %d; want 1 and 0", files, b.Depth())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBacklogEmptyAndDiscard(t *testing.T) {
	b := openBacklog(t, backlogOptions(t, t.TempDir()))
	if err := b.Put(messages(0, 7)); err != nil {
		t.Fatal(err)
	}
	if err := b.Empty(); err != nil {
		t.Fatal(err)
	}
	wantBacklogDepth(t, b, 0)
	if err := b.Put(messages(7, 9)); err != nil {
		t.Fatal(err)
	}
	takeN(t, b, 7, 2)

	d := NewDiscardBacklog()
	if err := d.Put(messages(0, 3)); err != nil {
		t.Fatal(err)
	}
	wantBacklogDepth(t, d, 0)
}

// BenchmarkBacklogPut measures Puts of 1 or 200 messages, each waiting
// for its write, or leaving up to 16,384 messages to a drain as the
// broker does at the default --mem-queue-size.
func BenchmarkBacklogPut(b *testing.B) {
	for _, bench := range []struct {
		n      int
		behind int64
	}{{1, 0}, {200, 0}, {1, 16384}, {200, 16384}} {
		n := bench.n
		b.Run(fmt.Sprintf("batch=%d/write-behind=%d", n, bench.behind), func(b *testing.B) {
			o := backlogOptions(&testing.T{}, b.TempDir())
			o.WriteBehind = bench.behind
			o.Logger = slog.New(slog.DiscardHandler)
			o.SyncEvery = 1 << 30
			o.SyncTimeout = time.Hour
			o.MaxBytesPerFile = 1 << 30
			q := OpenBacklog(o)
			defer q.Close()
			msgs := messages(0, n)
			for i := range msgs {
				msgs[i].Body = bytes.Repeat([]byte{'x'}, 100)
			}
			b.ReportAllocs()
			b.SetBytes(int64(n * 100))
			for b.Loop() {
				if err := q.Put(msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
		})
	}
}

// BenchmarkBacklogTake measures reading 200-message records back through
// go-diskqueue and decoding them, per message.
func BenchmarkBacklogTake(b *testing.B) {
	o := backlogOptions(&testing.T{}, b.TempDir())
	o.Logger = slog.New(slog.DiscardHandler)
	o.SyncEvery = 1 << 30
	o.SyncTimeout = time.Hour
	o.MaxBytesPerFile = 1 << 30
	q := OpenBacklog(o)
	defer q.Close()
	msgs := messages(0, 200)
	for i := range msgs {
		msgs[i].Body = bytes.Repeat([]byte{'x'}, 100)
	}
	records := b.N/len(msgs) + 1
	for i := 0; i < records; i++ {
		if err := q.Put(msgs); err != nil {
			b.Fatal(err)
		}
	}
	dst := make([]protocol.Message, 0, len(msgs))
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	for got := 0; got < b.N; {
		dst = q.Take(<-q.ReadChan(), dst[:0])
		got += len(dst)
	}
}
