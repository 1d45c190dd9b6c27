package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"wren/protocol"
)

// testLogger sends logs to t.Log under -v and nowhere otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startSink starts a sink on a loopback port and shuts it down when the
// test ends.
func startSink(t testing.TB) *Sink {
	t.Helper()
	s, err := NewSink(&SinkOptions{TCPAddress: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

func TestPublishToSinkCountsExactly(t *testing.T) {
	tests := []struct {
		name                string
		batch, connections  int
		count               int64
		wantRoundTripsAtMax int64
	}{
		{name: "PUB, one connection", batch: 1, connections: 1, count: 500, wantRoundTripsAtMax: 500},
		{name: "PUB, three connections", batch: 1, connections: 3, count: 500, wantRoundTripsAtMax: 500},
		// 1000 = 142×7 + 6: the last MPUB carries the remainder.
		{name: "MPUB, uneven last batch", batch: 7, connections: 2, count: 1000, wantRoundTripsAtMax: 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t)
			opts := NewPublishOptions()
			opts.Addr = sink.Addr().String()
			opts.Topic = "sink_test"
			opts.Batch, opts.Connections, opts.Count, opts.Size = tt.batch, tt.connections, tt.count, 50
			result, err := Publish(context.Background(), opts, nil)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if result.Messages != tt.count || sink.Messages() != tt.count {
				t.Errorf("published %d, sink got %d, want %d", result.Messages, sink.Messages(), tt.count)
			}
			if result.Bytes != tt.count*50 {
				t.Errorf("Bytes = %d, want %d", result.Bytes, tt.count*50)
			}
			if result.Latency == nil || int64(result.Latency.Samples) != tt.wantRoundTripsAtMax {
				t.Errorf("Latency = %+v, want %d samples, one per round trip", result.Latency, tt.wantRoundTripsAtMax)
			}
		})
	}
}

func TestPublishStopsAtDuration(t *testing.T) {
	sink := startSink(t)
	opts := NewPublishOptions()
	opts.Addr, opts.Topic, opts.Connections = sink.Addr().String(), "t", 2
	opts.Duration = 100 * time.Millisecond
	result, err := Publish(context.Background(), opts, nil)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// A publish under way at the deadline finishes, so every message the
	// sink acknowledged is counted.
	if result.Messages != sink.Messages() {
		t.Errorf("published %d, sink got %d", result.Messages, sink.Messages())
	}
}

func TestPublishStopsWhenCancelled(t *testing.T) {
	sink := startSink(t)
	opts := NewPublishOptions()
	opts.Addr, opts.Topic, opts.Duration = sink.Addr().String(), "t", time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		deadline := time.Now().Add(5 * time.Second)
		for sink.Messages() < 100 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}()
	result, err := Publish(ctx, opts, nil)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if result.Messages < 100 || result.Messages != sink.Messages() {
		t.Errorf("published %d, sink got %d, want the same and at least 100", result.Messages, sink.Messages())
	}
}

func TestPublishDialFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	opts := NewPublishOptions()
	opts.Addr, opts.Topic = addr, "t"
	if _, err := Publish(context.Background(), opts, nil); err == nil {
		t.Fatal("Publish to a closed port succeeded")
	}
}

// sinkConn opens a raw connection to the sink.
func sinkConn(t *testing.T, sink *Sink) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", sink.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, bufio.NewReader(conn)
}

func readFrame(t *testing.T, r io.Reader) (int32, string) {
	t.Helper()
	frameType, data, err := protocol.ReadFrame(r, 1<<20)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	return frameType, string(data)
}

func TestSinkAnswersPipelinedCommands(t *testing.T) {
	sink := startSink(t)
	conn, r := sinkConn(t, sink)
	var req []byte
	req = append(req, protocol.MagicV2...)
	req = protocol.AppendCommand(req, "IDENTIFY", []byte(`{"client_id":"x"}`))
	req = protocol.AppendCommand(req, "PUB", []byte("one"), "t")
	req = protocol.AppendCommand(req, "NOP", nil)
	req = protocol.AppendCommand(req, "MPUB", protocol.AppendMPUBBody(nil, [][]byte{[]byte("a"), []byte("b"), []byte("c")}), "t")
	req = protocol.AppendCommand(req, "DPUB", []byte("later"), "t", "1000")
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if frameType, data := readFrame(t, r); frameType != protocol.FrameTypeResponse || data != "OK" {
			t.Fatalf("reply %d = type %d %q, want OK", i, frameType, data)
		}
	}
	if got := sink.Messages(); got != 5 {
		t.Errorf("Messages = %d, want 5", got)
	}
}

func TestSinkNegotiatesFeatures(t *testing.T) {
	sink := startSink(t)
	conn, r := sinkConn(t, sink)
	req := protocol.AppendCommand([]byte(protocol.MagicV2), "IDENTIFY", []byte(`{"feature_negotiation":true}`))
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	frameType, data := readFrame(t, r)
	var reply protocol.IdentifyResponse
	if frameType != protocol.FrameTypeResponse || json.Unmarshal([]byte(data), &reply) != nil || reply.MaxRdyCount != 2500 {
		t.Fatalf("IDENTIFY reply = type %d %q, want JSON with max_rdy_count 2500", frameType, data)
	}
}

func TestSinkRefuses(t *testing.T) {
	tests := []struct {
		name, send, wantPrefix string
	}{
		{"bad magic", "  V1PING\n", "E_BAD_PROTOCOL"},
		{"consumer command", protocol.MagicV2 + "SUB t c\n", "E_INVALID invalid command SUB"},
		{"PUB without topic", protocol.MagicV2 + "PUB\n", "E_INVALID PUB insufficient"},
		{"empty body", protocol.MagicV2 + "PUB t\n\x00\x00\x00\x00", "E_BAD_BODY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t)
			conn, r := sinkConn(t, sink)
			if _, err := conn.Write([]byte(tt.send)); err != nil {
				t.Fatal(err)
			}
			if frameType, data := readFrame(t, r); frameType != protocol.FrameTypeError || !strings.HasPrefix(data, tt.wantPrefix) {
				t.Errorf("reply = type %d %q, want an error frame %q", frameType, data, tt.wantPrefix)
			}
			if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
				t.Errorf("after a fatal error read = %v, want EOF", err)
			}
		})
	}
}

func TestSinkShutdownClosesIdleConnections(t *testing.T) {
	sink := startSink(t)
	conn, r := sinkConn(t, sink)
	if _, err := conn.Write([]byte(protocol.MagicV2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sink.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// EOF or a reset, depending on whether the sink had read the magic.
	if _, err := r.ReadByte(); err == nil || isTimeout(err) {
		t.Errorf("read after Shutdown = %v, want the connection closed", err)
	}
}
