package broker

import (
	"context"
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
