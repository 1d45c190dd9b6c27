package broker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// testLogWriter sends broker logs to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testOptions returns options for a broker on loopback port 0 with its
// data in a fresh temporary directory.
func testOptions(t testing.TB) *Options {
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.HTTPSAddress = ""
	opts.BroadcastAddress = "127.0.0.1"
	opts.DataPath = t.TempDir()
	var w io.Writer = testLogWriter{t}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return opts
}

// startTestBroker starts a broker with testOptions changed by configure,
// and shuts it down when the test ends.
func startTestBroker(t testing.TB, configure func(*Options)) *Broker {
	t.Helper()
	opts := testOptions(t)
	if configure != nil {
		configure(opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return b
}

// waitFor polls cond every few milliseconds until it holds or the timeout
// passes, then fails the test with what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSubscribed waits until topic/channel has a client on the broker:
// go-nsq's ConnectToNSQD returns before the broker has read its SUB, and a
// message published before a channel exists never reaches it.
func waitSubscribed(t testing.TB, b *Broker, topic, channel string) {
	t.Helper()
	waitFor(t, 5*time.Second, "a client subscribed to "+topic+"/"+channel, func() bool {
		tp := b.ExistingTopic(topic)
		if tp == nil {
			return false
		}
		ch := tp.ExistingChannel(channel)
		return ch != nil && len(ch.clientList()) > 0
	})
}
