package diskqueue

import (
	"errors"
	"sync"
	"testing"
	"time"

	"wren/protocol"
)

// gatedQueue holds every Put at a gate until the test opens it, and can
// be told to fail them, so a test can see what a backlog does while its
// disk is slow or broken.
type gatedQueue struct {
	Queue
	entered chan struct{} // receives once as each Put reaches the gate

	mu   sync.Mutex
	gate chan struct{} // closed while Puts may pass
	fail error
}

func newGatedQueue(q Queue) *gatedQueue {
	return &gatedQueue{Queue: q, entered: make(chan struct{}, 1000), gate: make(chan struct{})}
}

func (q *gatedQueue) Put(rec []byte) error {
	q.entered <- struct{}{}
	q.mu.Lock()
	gate := q.gate
	q.mu.Unlock()
	<-gate
	q.mu.Lock()
	err := q.fail
	q.mu.Unlock()
	if err != nil {
		return err
	}
	return q.Queue.Put(rec)
}

func (q *gatedQueue) open() {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.gate:
	default:
		close(q.gate)
	}
}

func (q *gatedQueue) setFail(err error) {
	q.mu.Lock()
	q.fail = err
	q.mu.Unlock()
}

// waitEntered waits for a Put to reach the gate.
func (q *gatedQueue) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-q.entered:
	case <-time.After(waitTimeout):
		t.Fatalf("no write reached the disk queue after %s", waitTimeout)
	}
}

// openGatedBacklog opens a backlog with a write-behind allowance whose
// queue's Puts wait at a gate.
func openGatedBacklog(t *testing.T, allowance int64) (*Backlog, *gatedQueue) {
	t.Helper()
	o := backlogOptions(t, t.TempDir())
	o.WriteBehind = allowance
	b := openBacklog(t, o)
	q := newGatedQueue(b.queue)
	b.queue = q
	t.Cleanup(q.open) // so Close can finish a write still at the gate
	return b, q
}

// putAsync runs Put in a goroutine; the channel gets its error.
func putAsync(b *Backlog, msgs []protocol.Message) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.Put(msgs) }()
	return done
}

func wantPutReturns(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("Put did not return after %s", waitTimeout)
		return nil
	}
}

func unwritten(b *Backlog) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unwritten
}

// Puts within the allowance return while the disk is held up; the Put
// that takes the backlog past it waits for its own write.
func TestBacklogWriteBehindAllowance(t *testing.T) {
	b, q := openGatedBacklog(t, 100)
	for i := 0; i < 3; i++ {
		if err := wantPutReturns(t, putAsync(b, messages(i*20, i*20+20))); err != nil {
			t.Fatal(err)
		}
	}
	q.waitEntered(t) // the first write is at the gate
	wantBacklogDepth(t, b, 60)

	over := putAsync(b, messages(60, 120))
	deadline := time.Now().Add(waitTimeout)
	for unwritten(b) != 120 {
		if time.Now().After(deadline) {
			t.Fatalf("the fourth Put was not queued: %d messages unwritten", unwritten(b))
		}
		time.Sleep(time.Millisecond)
	}
	// Every write is still held at the gate, so the Put past the
	// allowance cannot have returned.
	select {
	case err := <-over:
		t.Fatalf("a Put past the write-behind allowance returned (%v) before its write", err)
	default:
	}
	q.open()
	if err := wantPutReturns(t, over); err != nil {
		t.Fatal(err)
	}
	wantBacklogDepth(t, b, 120)
	takeN(t, b, 0, 120)
}

// What a Put left unwritten is on disk once the backlog is closed.
func TestBacklogWriteBehindWrittenOnClose(t *testing.T) {
	o := backlogOptions(t, t.TempDir())
	o.WriteBehind = 1000
	b := OpenBacklog(o)
	for i := 0; i < 10; i++ {
		if err := b.Put(messages(i*50, i*50+50)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBacklog(t, o)
	wantBacklogDepth(t, b, 500)
	takeN(t, b, 0, 500)
}

// A failed write of messages already acknowledged keeps them queued and
// writes them again once the disk works; until a write succeeds, Puts wait
// for their writes and get the error. Nothing is lost.
func TestBacklogWriteBehindFailure(t *testing.T) {
	b, q := openGatedBacklog(t, 100)
	diskFull := errors.New("no space left on device")
	q.setFail(diskFull)
	q.open()
	if err := b.Put(messages(0, 10)); err != nil {
		t.Fatalf("a Put within the allowance returned %v", err)
	}
	// The write fails, and is tried again.
	q.waitEntered(t)
	q.waitEntered(t)
	wantBacklogDepth(t, b, 10)
	if err := b.Put(messages(10, 11)); !errors.Is(err, diskFull) {
		t.Fatalf("Put after a failed write = %v, want %v", err, diskFull)
	}
	q.setFail(nil)
	if err := b.Put(messages(11, 12)); err != nil {
		t.Fatalf("Put once the disk works again = %v", err)
	}
	deadline := time.Now().Add(waitTimeout)
	for b.Depth() != 11 || b.unwrittenNow() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("depth %d, unwritten %d; want the 10 kept and 1 new written", b.Depth(), b.unwrittenNow())
		}
		time.Sleep(time.Millisecond)
	}
	got := map[string]bool{}
	for len(got) < 11 {
		for _, m := range b.Take(<-b.ReadChan(), nil) {
			if got[string(m.Body)] {
				t.Fatalf("%s read twice", m.Body)
			}
			got[string(m.Body)] = true
		}
	}
	for _, m := range append(messages(0, 10), messages(11, 12)...) {
		if !got[string(m.Body)] {
			t.Errorf("%s missing", m.Body)
		}
	}
	if n := b.lost.Load(); n != 0 {
		t.Fatalf("lost = %d, want 0", n)
	}
}

// Acknowledged messages still failing to write when the backlog closes
// are counted lost rather than holding Close up.
func TestBacklogWriteBehindLostOnClose(t *testing.T) {
	b, q := openGatedBacklog(t, 100)
	q.setFail(errors.New("no space left on device"))
	q.open()
	if err := b.Put(messages(0, 10)); err != nil {
		t.Fatal(err)
	}
	q.waitEntered(t)
	_ = b.Close()
	if n := b.lost.Load(); n != 10 {
		t.Fatalf("lost = %d after Close, want 10", n)
	}
}

func (b *Backlog) unwrittenNow() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unwritten
}

// Empty removes what is waiting to be written and waits for the write
// under way, so nothing put before it comes back afterwards.
func TestBacklogWriteBehindEmpty(t *testing.T) {
	b, q := openGatedBacklog(t, 100)
	if err := b.Put(messages(0, 10)); err != nil {
		t.Fatal(err)
	}
	q.waitEntered(t) // messages 0-9 are being written
	if err := b.Put(messages(10, 20)); err != nil {
		t.Fatal(err)
	}
	emptied := make(chan error, 1)
	go func() { emptied <- b.Empty() }()
	q.open()
	select {
	case err := <-emptied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Empty did not return after %s", waitTimeout)
	}
	wantBacklogDepth(t, b, 0)
	if err := b.Put(messages(20, 25)); err != nil {
		t.Fatal(err)
	}
	takeN(t, b, 20, 5)
}

// Empty drops acknowledged messages waiting to be written again, so they
// do not come back once the disk works.
func TestBacklogWriteBehindEmptyDropsRetry(t *testing.T) {
	b, q := openGatedBacklog(t, 100)
	q.setFail(errors.New("no space left on device"))
	q.open()
	if err := b.Put(messages(0, 10)); err != nil {
		t.Fatal(err)
	}
	q.waitEntered(t)
	q.waitEntered(t) // failed twice: the messages are kept for a retry
	if err := b.Empty(); err != nil {
		t.Fatal(err)
	}
	wantBacklogDepth(t, b, 0)
	q.setFail(nil)
	deadline := time.Now().Add(waitTimeout)
	for b.unwrittenNow() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("unwritten %d after Empty, want 0", b.unwrittenNow())
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Put(messages(10, 12)); err != nil {
		t.Fatal(err)
	}
	takeN(t, b, 10, 2)
}
