package diskqueue

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait on a queue: a Put, Depth, Close or receive
// that takes longer means go-diskqueue's goroutine is stuck.
const waitTimeout = 5 * time.Second

// quietPeriod is how long a queue must stay silent to count as having
// nothing to read.
const quietPeriod = 100 * time.Millisecond

const queueName = "test"

// recordSize is the length of record(i); with the 4-byte length prefix
// each record takes frameSize bytes of a segment file.
const (
	recordSize = 13 // len("record-000000")
	frameSize  = 4 + recordSize
)

func record(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

// testWriter sends a logger's lines to t.Log until the test ends. A queue
// whose goroutine is stuck (a failed test) may log on; t.Log would then
// panic.
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// testOptions are options for a queue in dir that syncs after every write
// and logs to t.
func testOptions(t *testing.T, dir string) Options {
	return Options{
		Name:            queueName,
		DataPath:        dir,
		MaxBytesPerFile: 1 << 20,
		MinRecordSize:   4,
		MaxRecordSize:   1024,
		SyncEvery:       1,
		SyncTimeout:     50 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// testQueue is an open Queue whose every call is bounded by waitTimeout
// and which is closed when the test ends, if the test has not closed it.
type testQueue struct {
	t      *testing.T
	q      Queue
	closed bool
}

func openQueue(t *testing.T, o Options) *testQueue {
	t.Helper()
	q := &testQueue{t: t, q: Open(o)}
	t.Cleanup(func() {
		if !q.closed {
			q.close()
		}
	})
	return q
}

// within runs f and fails the test if it does not return in waitTimeout.
func within[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return within %s", what, waitTimeout)
		var zero T
		return zero
	}
}

func (q *testQueue) put(rec []byte) {
	q.t.Helper()
	if err := within(q.t, "Put", func() error { return q.q.Put(rec) }); err != nil {
		q.t.Fatalf("Put(%q): %v", rec, err)
	}
}

func (q *testQueue) putRange(from, to int) {
	q.t.Helper()
	for i := from; i < to; i++ {
		q.put(record(i))
	}
}

func (q *testQueue) depth() int64 {
	q.t.Helper()
	return within(q.t, "Depth", q.q.Depth)
}

func (q *testQueue) wantDepth(want int64) {
	q.t.Helper()
	if got := q.depth(); got != want {
		q.t.Fatalf("Depth() = %d, want %d", got, want)
	}
}

func (q *testQueue) empty() {
	q.t.Helper()
	if err := within(q.t, "Empty", q.q.Empty); err != nil {
		q.t.Fatalf("Empty: %v", err)
	}
}

func (q *testQueue) close() {
	q.t.Helper()
	q.closed = true
	if err := within(q.t, "Close", q.q.Close); err != nil {
		q.t.Fatalf("Close: %v", err)
	}
}

func (q *testQueue) delete() {
	q.t.Helper()
	q.closed = true
	if err := within(q.t, "Delete", q.q.Delete); err != nil {
		q.t.Fatalf("Delete: %v", err)
	}
}

// next receives the next record from ReadChan.
func (q *testQueue) next() []byte {
	q.t.Helper()
	select {
	case rec := <-q.q.ReadChan():
		return rec
	case <-time.After(waitTimeout):
		q.t.Fatalf("no record on ReadChan within %s", waitTimeout)
		return nil
	}
}

// wantRecords receives the records numbered want, in that order.
func (q *testQueue) wantRecords(want ...int) {
	q.t.Helper()
	for _, i := range want {
		if got := q.next(); !bytes.Equal(got, record(i)) {
			q.t.Fatalf("read %q, want %q", got, record(i))
		}
	}
}

// wantNothing checks that ReadChan yields nothing for quietPeriod.
func (q *testQueue) wantNothing() {
	q.t.Helper()
	select {
	case rec := <-q.q.ReadChan():
		q.t.Fatalf("read %q from a queue that should have nothing", rec)
	case <-time.After(quietPeriod):
	}
}

func span(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// segmentFile is the path of data file number n of the test queue in dir.
func segmentFile(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%s.diskqueue.%06d.dat", queueName, n))
}

func metaFile(dir string) string {
	return filepath.Join(dir, queueName+".diskqueue.meta.dat")
}

// dataFiles lists the test queue's segment files in dir, not its metadata
// or .bad files.
func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, queueName+".diskqueue.[0-9]*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// queueFiles lists every file of the test queue in dir.
func queueFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, queueName+".diskqueue.*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestPutThenReadInOrder(t *testing.T) {
	q := openQueue(t, testOptions(t, t.TempDir()))
	q.wantDepth(0)
	q.wantNothing()

	const n = 100
	for i := 0; i < n; i++ {
		q.put(record(i))
		q.wantDepth(int64(i + 1))
	}
	for i := 0; i < n; i++ {
		q.wantRecords(i)
		q.wantDepth(int64(n - i - 1))
	}
	q.wantNothing()

	// Writes after the reader caught up are read too.
	q.put(record(n))
	q.wantRecords(n)
	q.wantDepth(0)
}

func TestRecordSizeLimitsOnPut(t *testing.T) {
	o := testOptions(t, t.TempDir())
	q := openQueue(t, o)
	for _, size := range []int{int(o.MinRecordSize) - 1, int(o.MaxRecordSize) + 1} {
		if err := within(t, "Put", func() error { return q.q.Put(make([]byte, size)) }); err == nil {
			t.Errorf("Put of a %d-byte record outside [%d, %d] succeeded", size, o.MinRecordSize, o.MaxRecordSize)
		}
	}
	for _, size := range []int{int(o.MinRecordSize), int(o.MaxRecordSize)} {
		q.put(bytes.Repeat([]byte{'x'}, size))
		if got := q.next(); len(got) != size {
			t.Errorf("read %d bytes, want the %d-byte record put", len(got), size)
		}
	}
	q.wantDepth(0)
}

func TestReopenResumesWhereReadingStopped(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testOptions(t, dir))
	q.putRange(0, 10)
	q.wantRecords(span(0, 4)...)
	// go-diskqueue has already read record 4 off disk, waiting for a
	// receiver; closing must not count it as read.
	q.close()

	q = openQueue(t, testOptions(t, dir))
	q.wantDepth(6)
	q.wantRecords(span(4, 10)...)
	q.wantNothing()
	q.wantDepth(0)

	// A queue read to its end and reopened has nothing to read, and takes
	// new records.
	q.close()
	q = openQueue(t, testOptions(t, dir))
	q.wantDepth(0)
	q.wantNothing()
	q.put(record(10))
	q.wantRecords(10)
}

func TestRollsOverSegmentFiles(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, dir)
	o.MaxBytesPerFile = 4 * frameSize // four records a file
	q := openQueue(t, o)

	const n = 50
	q.putRange(0, n)
	q.wantDepth(n)
	if got, want := len(dataFiles(t, dir)), (n+3)/4; got != want {
		t.Fatalf("%d records of %d bytes in files of %d bytes made %d files, want %d",
			n, frameSize, o.MaxBytesPerFile, got, want)
	}

	q.wantRecords(span(0, 10)...)
	q.close()
	// Reading record 8 moved the reader into file 2, so files 0 and 1 are gone.
	for _, f := range []string{segmentFile(dir, 0), segmentFile(dir, 1)} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s, read to its end, still exists (Stat: %v)", filepath.Base(f), err)
		}
	}

	q = openQueue(t, o)
	q.wantDepth(n - 10)
	q.wantRecords(span(10, n)...)
	q.wantNothing()
	q.wantDepth(0)
	if files := dataFiles(t, dir); len(files) > 1 {
		t.Errorf("after reading everything %d segment files remain: %v", len(files), files)
	}
}

func TestEmpty(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, dir)
	o.MaxBytesPerFile = 4 * frameSize
	q := openQueue(t, o)
	q.putRange(0, 10)
	q.wantRecords(0, 1)

	q.empty()
	q.wantDepth(0)
	q.wantNothing()
	if files := dataFiles(t, dir); len(files) != 0 {
		t.Errorf("Empty left segment files: %v", files)
	}

	q.putRange(10, 13)
	q.wantDepth(3)
	q.wantRecords(10, 11)
	q.close()

	// Nothing emptied comes back after a reopen.
	q = openQueue(t, o)
	q.wantDepth(1)
	q.wantRecords(12)
	q.wantNothing()
}

func TestEmptyThenReopen(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, testOptions(t, dir))
	q.putRange(0, 5)
	q.empty()
	q.close()

	q = openQueue(t, testOptions(t, dir))
	q.wantDepth(0)
	q.wantNothing()
}

// TestDeleteRemovesFiles checks Queue's contract for Delete: close and
// remove the files, so a queue of the same name starts empty.
func TestDeleteRemovesFiles(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, dir)
	o.MaxBytesPerFile = 4 * frameSize
	q := openQueue(t, o)
	q.putRange(0, 10)
	q.wantRecords(0)
	q.delete()

	if files := queueFiles(t, dir); len(files) != 0 {
		t.Errorf("Delete left the queue's files: %v", files)
	}
	q = openQueue(t, o)
	if got := q.depth(); got != 0 {
		t.Errorf("a queue reopened after Delete has depth %d, want 0", got)
	}
	q.wantNothing()
}

func TestDiscard(t *testing.T) {
	var q Queue = NewDiscard()
	for i := 0; i < 10; i++ {
		if err := q.Put(record(i)); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if d := q.Depth(); d != 0 {
		t.Errorf("Depth() = %d, want 0", d)
	}
	select {
	case rec := <-q.ReadChan():
		t.Fatalf("Discard yielded %q", rec)
	case <-time.After(quietPeriod):
	}
	for name, f := range map[string]func() error{"Empty": q.Empty, "Close": q.Close, "Delete": q.Delete} {
		if err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
