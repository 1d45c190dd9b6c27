package broker

import (
	"fmt"
	"os"
	"testing"

	"wren/protocol"
)

// The in-flight journal keeps what is taken off disk until it is done
// with, counts a message journaled twice, rewrites itself once mostly
// finished, and goes when nothing is live; a start puts what it kept back
// on disk.
func TestInflightJournalKeepsUnfinished(t *testing.T) {
	dir := t.TempDir()
	j := openInflightJournal(&queueConfig{dataPath: dir, durable: true}, "t:ch", false)
	var msgs []*message
	for i := range 300 {
		var id protocol.MessageID
		copy(id[:], fmt.Sprintf("%016d", i))
		msgs = append(msgs, newMessage(id, int64(i+1), []byte(fmt.Sprintf("m%d", i))))
	}
	if err := j.add(msgs); err != nil {
		t.Fatal(err)
	}
	if err := j.add(msgs[:1]); err != nil { // read again after a requeue
		t.Fatal(err)
	}
	j.done(msgs[1:]...)
	onDisk, err := readDeferredPath(j.path)
	if err != nil || len(onDisk) != 2 || string(onDisk[0].Body) != "m0" {
		t.Fatalf("journal after 299 of 301 done: %d messages (%v), want m0 twice", len(onDisk), err)
	}
	j.done(msgs[0])

	// A crash now: one m0 is still live; the file may hold both.
	var restored []protocol.Message
	n, err := restoreInflightJournal(dir, "t:ch", func(m []protocol.Message) error { restored = append(restored, m...); return nil })
	if err != nil || n == 0 || n != len(restored) {
		t.Fatalf("restored %d (%v): %+v, want m0", n, err, restored)
	}
	for _, m := range restored {
		if string(m.Body) != "m0" {
			t.Fatalf("restored %q, which was done with", m.Body)
		}
	}
	if _, err := os.Stat(j.path); !os.IsNotExist(err) {
		t.Fatalf("journal still there after its restore: %v", err)
	}

	fresh := openInflightJournal(&queueConfig{dataPath: t.TempDir(), durable: true}, "t:ch", false)
	if err := fresh.add(msgs[5:7]); err != nil {
		t.Fatal(err)
	}
	fresh.done(msgs[5], msgs[6])
	if _, err := os.Stat(fresh.path); !os.IsNotExist(err) {
		t.Fatalf("journal still there with nothing live: %v", err)
	}
}
