package diskqueue

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"wren/protocol"
)

// failingQueue lets the first `allow` Puts through and fails the rest
// with fail until allow is raised.
type failingQueue struct {
	Queue
	mu    sync.Mutex
	allow int
	fail  error
}

func (q *failingQueue) Put(rec []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.allow == 0 {
		return q.fail
	}
	q.allow--
	return q.Queue.Put(rec)
}

func (q *failingQueue) setAllow(n int) {
	q.mu.Lock()
	q.allow = n
	q.mu.Unlock()
}

// A Put whose records are written in part says how many of its messages
// were written, so a caller retries only the rest; the backlog reports
// when its writes start failing and when they work again.
func TestBacklogWriteErrorCountsWritten(t *testing.T) {
	b := openBacklog(t, backlogOptions(t, t.TempDir()))
	diskFull := errors.New("no space left on device")
	q := &failingQueue{Queue: b.queue, allow: 1, fail: diskFull}
	b.queue = q
	var mu sync.Mutex
	var states []error
	b.onWriteState = func(err error) {
		mu.Lock()
		states = append(states, err)
		mu.Unlock()
	}

	// Each 40 KiB message needs a record of its own (RecordTarget is 64 KiB).
	big := make([]protocol.Message, 4)
	for i := range big {
		big[i] = *testMessage(i)
		big[i].Body = bytes.Repeat([]byte{byte('a' + i)}, 40<<10)
	}
	err := b.Put(big)
	if !errors.Is(err, diskFull) {
		t.Fatalf("Put = %v, want %v", err, diskFull)
	}
	if got := Written(err); got != 1 {
		t.Fatalf("Written = %d, want 1 (the first record went through)", got)
	}
	wantBacklogDepth(t, b, 1)

	q.setAllow(100)
	if err := b.Put(big[1:]); err != nil {
		t.Fatalf("Put once the disk works again = %v", err)
	}
	wantBacklogDepth(t, b, 4)
	for i := 0; i < 4; i++ {
		msgs := b.Take(<-b.ReadChan(), nil)
		if len(msgs) != 1 || msgs[0].Body[0] != byte('a'+i) {
			t.Fatalf("record %d: %d messages, want message %c once", i, len(msgs), 'a'+i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) != 2 || !errors.Is(states[0], diskFull) || states[1] != nil {
		t.Fatalf("write states %v, want [%v <nil>]", states, diskFull)
	}
	if Written(nil) != 0 || Written(diskFull) != 0 {
		t.Fatal("Written of a non-WriteError is not 0")
	}
}
