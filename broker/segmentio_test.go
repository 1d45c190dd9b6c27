package broker

import (
	"fmt"
	"testing"
	"time"

	segment "github.com/segmentio/nsq-go"
)

// segmentio's nsq-go, a widely used Go client, declares an MPUB body
// size of only the message bytes. Its producer publishes single messages
// and batches to wren, and its consumer receives every one.
func TestSegmentioClient(t *testing.T) {
	b := startTestBroker(t, nil)
	addr := b.TCPAddr().String()
	p, err := segment.StartProducer(segment.ProducerConfig{Address: addr, Topic: "segment"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	want := map[string]bool{}
	for batch := 0; batch < 5; batch++ {
		bodies := make([][]byte, 20)
		for i := range bodies {
			bodies[i] = []byte(fmt.Sprintf("batch %d message %d", batch, i))
			want[string(bodies[i])] = true
		}
		if err := p.MultiPublish(bodies); err != nil {
			t.Fatalf("MultiPublish batch %d: %v", batch, err)
		}
	}
	if err := p.Publish([]byte("single")); err != nil {
		t.Fatal(err)
	}
	want["single"] = true

	c, err := segment.StartConsumer(segment.ConsumerConfig{Address: addr, Topic: "segment", Channel: "c", MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case m := <-c.Messages():
			if !want[string(m.Body)] {
				t.Fatalf("unexpected or repeated message %q", m.Body)
			}
			delete(want, string(m.Body))
			m.Finish()
		case <-deadline:
			t.Fatalf("%d messages never arrived", len(want))
		}
	}
}
