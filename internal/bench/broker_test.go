package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"wren/broker"
)

// startBroker starts a wren broker on loopback ports with its data in a
// temporary directory, changed by configure, and shuts it down when the
// test ends. It returns the broker's TCP address.
func startBroker(t *testing.T, configure func(*broker.Options)) string {
	t.Helper()
	opts := broker.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.HTTPSAddress = ""
	opts.BroadcastAddress = "127.0.0.1"
	opts.DataPath = t.TempDir()
	opts.Logger = testLogger(t)
	if configure != nil {
		configure(opts)
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("broker Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("broker Shutdown: %v", err)
		}
	})
	return b.TCPAddr().String()
}

func publishCount(t *testing.T, addr, topic string, count int64, batch int) {
	t.Helper()
	opts := NewPublishOptions()
	opts.Addr, opts.Topic, opts.Count, opts.Batch, opts.Connections, opts.Size = addr, topic, count, batch, 2, 100
	result, err := Publish(context.Background(), opts, nil)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if result.Messages != count {
		t.Fatalf("published %d, want %d", result.Messages, count)
	}
}

func TestConsumeExactlyWhatWasPublished(t *testing.T) {
	addr := startBroker(t, nil)
	const count = 1000
	// The channel does not exist yet: the topic keeps the messages for the
	// first channel, which the SUB below creates.
	publishCount(t, addr, "consume_test", count, 10)

	opts := NewConsumeOptions()
	opts.Addr, opts.Topic, opts.Channel = addr, "consume_test", "c"
	// Three connections with a small RDY: several read batches and FIN
	// flushes on each. The first run stops short of the backlog and hands
	// back what it was sent beyond its count; the second takes the rest.
	opts.Connections, opts.RDY = 3, 50
	for _, want := range []int64{400, count - 400} {
		opts.Count = want
		result, err := Consume(context.Background(), opts, nil)
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if result.Messages != want || result.Bytes != want*100 {
			t.Errorf("consumed %d messages, %d bytes; want %d, %d", result.Messages, result.Bytes, want, want*100)
		}
		if result.Latency != nil {
			t.Errorf("consume reported latency %+v", result.Latency)
		}
	}

	// Every message was finished: nothing comes back once the connections
	// are gone, though wren requeues a closed client's in-flight messages.
	opts.Count, opts.Duration = 0, 200*time.Millisecond
	again, err := Consume(context.Background(), opts, nil)
	if err != nil {
		t.Fatalf("second Consume: %v", err)
	}
	if again.Messages != 0 {
		t.Errorf("second Consume got %d messages, want 0", again.Messages)
	}
}

func TestConsumeStopsAtDurationOnAnEmptyChannel(t *testing.T) {
	addr := startBroker(t, nil)
	opts := NewConsumeOptions()
	opts.Addr, opts.Topic, opts.Channel, opts.Duration = addr, "empty", "c", 100*time.Millisecond
	result, err := Consume(context.Background(), opts, nil)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if result.Messages != 0 {
		t.Errorf("consumed %d messages from an empty channel", result.Messages)
	}
}

func TestLatencyReceivesEveryMessage(t *testing.T) {
	addr := startBroker(t, nil)
	// A message from another run on the same channel is finished but not
	// measured.
	publishCount(t, addr, "latency_test", 1, 1)

	opts := NewLatencyOptions()
	opts.Addr, opts.Topic, opts.Channel = addr, "latency_test", "c"
	opts.Rate, opts.Count = 2000, 100
	result, err := Latency(context.Background(), opts, nil)
	if err != nil {
		t.Fatalf("Latency: %v", err)
	}
	if result.Messages != 100 || result.Missing != 0 {
		t.Errorf("received %d, missing %d; want 100, 0", result.Messages, result.Missing)
	}
	l := result.Latency
	if l == nil || l.Samples != 100 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Errorf("Latency = %+v, want 100 ordered samples", l)
	}
}

func TestBrokerErrorIsReported(t *testing.T) {
	addr := startBroker(t, func(o *broker.Options) {
		o.MaxMsgSize = 100
		o.MaxBodySize = 1000
	})
	opts := NewPublishOptions()
	// 20 messages of 100 bytes make an MPUB body over 1000 bytes.
	opts.Addr, opts.Topic, opts.Batch, opts.Size, opts.Connections = addr, "t", 20, 100, 3
	_, err := Publish(context.Background(), opts, nil)
	brokerErr, ok := errors.AsType[*BrokerError](err)
	if !ok || !strings.HasPrefix(brokerErr.Text, "E_BAD_BODY") {
		t.Fatalf("Publish error = %v, want an E_BAD_BODY broker error", err)
	}
}
