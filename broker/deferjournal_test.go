package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// With --durable a DPUB is answered only once its message is in the
// journal of the queue holding it: a channel's, or the topic's while it
// has no channel. A clean shutdown moves them to the deferred file and
// removes the journals.
func TestDurableDeferredPublishIsJournaled(t *testing.T) {
	var dataPath string
	b := startTestBroker(t, func(o *Options) { o.Durable = true; dataPath = o.DataPath })
	tp, err := b.Topic("withchannel")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Channel("ch"); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, b, nil)
	for topic, journal := range map[string]string{"withchannel": "withchannel:ch", "nochannel": "nochannel"} {
		if err := p.DeferredPublish(topic, time.Hour, []byte("later-"+topic)); err != nil {
			t.Fatal(err)
		}
		msgs, err := readDeferredPath(deferJournalPath(dataPath, journal))
		if err != nil {
			t.Fatalf("journal of %s: %v", journal, err)
		}
		if len(msgs) != 1 || string(msgs[0].Body) != "later-"+topic || msgs[0].due < time.Now().Add(59*time.Minute).UnixNano() {
			t.Fatalf("journal of %s after DPUB returned: %+v, want the message due in an hour", journal, msgs)
		}
	}
	p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, journal := range []string{"withchannel:ch", "nochannel"} {
		if msgs, err := readDeferredPath(deferJournalPath(dataPath, journal)); err != nil || len(msgs) != 0 {
			t.Fatalf("journal of %s after a clean shutdown: %d messages, %v", journal, len(msgs), err)
		}
		if msgs, err := readDeferredFile(dataPath, journal); err != nil || len(msgs) != 1 {
			t.Fatalf("deferred file of %s after a clean shutdown: %d messages, %v", journal, len(msgs), err)
		}
	}
}

// Concurrent DPUBs share the journal's fsyncs.
func TestDeferJournalGroupCommit(t *testing.T) {
	const publishers, each = 16, 20
	j := &deferJournal{path: deferJournalPath(t.TempDir(), "t:ch")}
	defer j.remove()
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := &message{due: time.Now().Add(time.Hour).UnixNano()}
				m.Body = []byte(fmt.Sprintf("%d-%d", p, i))
				if err := j.append([]*message{m}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	msgs, err := readDeferredPath(j.path)
	if err != nil || len(msgs) != publishers*each {
		t.Fatalf("journal holds %d messages (%v), want %d", len(msgs), err, publishers*each)
	}
	fsyncs := j.fsyncs.Load()
	t.Logf("%d concurrent appends shared %d fsyncs", publishers*each, fsyncs)
	if fsyncs*2 > publishers*each {
		t.Fatalf("%d concurrent appends made %d fsyncs, want at most half as many", publishers*each, fsyncs)
	}
}
