package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"wren/protocol"
)

// onlyClient returns the broker's one connected client.
func onlyClient(t *testing.T, b *Broker) *client {
	t.Helper()
	var only *client
	waitFor(t, 5*time.Second, "one client", func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		for _, c := range b.clients {
			only = c
		}
		return len(b.clients) == 1
	})
	return only
}

// idleBuffers describes what c holds while idle: "" when it holds only its
// small read buffer and no output buffer.
func idleBuffers(c *client) string {
	var problems []string
	if n := c.reader.bufferSize(); n != idleReadBufferSize {
		problems = append(problems, fmt.Sprintf("read buffer %d B, want %d", n, idleReadBufferSize))
	}
	c.writeMu.Lock()
	if c.outBuf != nil {
		problems = append(problems, fmt.Sprintf("holds a %d B output buffer (%d B pending)", cap(*c.outBuf), len(c.out)))
	}
	c.writeMu.Unlock()
	return strings.Join(problems, "; ")
}

func waitIdleBuffers(t *testing.T, c *client, when string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(5 * time.Second)
	for {
		if last = idleBuffers(c); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: client still busy after 5s: %s", when, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleClientReleasesBuffers: an IDENTIFYed publisher that goes quiet
// holds only the small read buffer, no output buffer and no pump; a line
// and a body far larger than that buffer still work, and it goes back to
// the small buffer afterwards.
func TestIdleClientReleasesBuffers(t *testing.T) {
	b := startTestBroker(t, nil)
	raw := dialRaw(t, b)
	raw.identify(t, map[string]any{"feature_negotiation": true, "client_id": "idle"})
	c := onlyClient(t, b)
	waitIdleBuffers(t, c, "after IDENTIFY")
	c.writeMu.Lock()
	pump := c.pumpStarted
	c.writeMu.Unlock()
	if pump {
		t.Fatal("pump started before SUB")
	}

	// A 1 MiB MPUB: 16 messages of 64 KiB.
	bodies := make([][]byte, 16)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte{byte('a' + i)}, 64*1024)
	}
	raw.send(t, "MPUB", protocol.AppendMPUBBody(nil, bodies), "big")
	raw.expectResponse(t, "OK")
	waitIdleBuffers(t, c, "after a 1 MiB MPUB")

	// A command line of 8 KiB: PUB ignores parameters after the topic.
	long := strings.Repeat("x ", 4*1024)
	raw.sendRaw(t, rawWithBody("PUB", 5, []byte("hello"), "big", long))
	raw.expectResponse(t, "OK")
	waitIdleBuffers(t, c, "after an 8 KiB command line")

	if got := b.ExistingTopic("big").Depth(); got != 17 {
		t.Fatalf("topic depth %d, want 17", got)
	}
}

// TestIdleConsumerReleasesBuffers: a consumer that has received and
// finished its messages gives its buffers back too.
func TestIdleConsumerReleasesBuffers(t *testing.T) {
	b := startTestBroker(t, nil)
	raw := dialRaw(t, b)
	raw.identify(t, map[string]any{"feature_negotiation": true})
	raw.send(t, "SUB", nil, "consume", "ch")
	raw.expectResponse(t, "OK")
	raw.send(t, "RDY", nil, "100")
	c := onlyClient(t, b)

	topic, err := b.Topic("consume")
	if err != nil {
		t.Fatal(err)
	}
	bodies := make([][]byte, 50)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte{'m'}, 1000)
	}
	if err := topic.Publish(bodies, 0); err != nil {
		t.Fatal(err)
	}
	for range bodies {
		m := raw.expectMessage(t)
		raw.send(t, "FIN", nil, string(m.ID[:]))
	}
	waitFor(t, 5*time.Second, "all messages finished", func() bool { return c.finishCount.Load() == uint64(len(bodies)) })
	waitIdleBuffers(t, c, "after consuming")
}

// TestHeartbeatBeforeSUB: a client that never subscribes has no pump, yet
// gets heartbeats at its interval, and is closed when it stays silent for
// two intervals.
func TestHeartbeatBeforeSUB(t *testing.T) {
	b := startTestBroker(t, nil)
	raw := dialRaw(t, b)
	raw.identify(t, map[string]any{"heartbeat_interval": 1000})
	_ = raw.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	frameType, data, err := protocol.ReadFrame(raw.r, rawMaxFrame)
	if err != nil {
		t.Fatalf("waiting for a heartbeat: %v", err)
	}
	if frameType != protocol.FrameTypeResponse || !bytes.Equal(data, protocol.ResponseHeartbeat) {
		t.Fatalf("got frame type %d %q, want a heartbeat", frameType, data)
	}
	raw.expectClosed(t)
}

// TestConnReaderSplitInput reads commands arriving one byte per read and
// in halves, including lines longer than the idle buffer.
func TestConnReaderSplitInput(t *testing.T) {
	long := "PUB " + strings.Repeat("y", 3000)
	input := "NOP\r\nPUB t\n\x00\x00\x00\x05hello" + long + "\n\x00\x00\x03\xe8" + strings.Repeat("z", 1000)
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader,
		"halves":   iotest.HalfReader,
		"whole":    func(r io.Reader) io.Reader { return r },
	} {
		t.Run(name, func(t *testing.T) {
			r := newConnReader(wrap(strings.NewReader(input)))
			expectLine(t, r, "NOP\r\n")
			expectLine(t, r, "PUB t\n")
			expectBody(t, r, "hello")
			expectLine(t, r, long+"\n")
			expectBody(t, r, strings.Repeat("z", 1000))
			if _, err := r.readLine(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the input: %v, want EOF", err)
			}
		})
	}
}

func TestConnReaderLineLimit(t *testing.T) {
	fits := strings.Repeat("a", fullReadBufferSize-1) + "\n"
	r := newConnReader(iotest.HalfReader(strings.NewReader(fits + strings.Repeat("b", fullReadBufferSize) + "\n")))
	expectLine(t, r, fits)
	if _, err := r.readLine(); !errors.Is(err, errLineFull) {
		t.Fatalf("a line past %d bytes: %v, want errLineFull", fullReadBufferSize, err)
	}
}

func expectLine(t *testing.T, r *connReader, want string) {
	t.Helper()
	line, err := r.readLine()
	if err != nil || string(line) != want {
		t.Fatalf("readLine: %q, %v; want %q", rawTruncate(line), err, rawTruncate([]byte(want)))
	}
}

func expectBody(t *testing.T, r *connReader, want string) {
	t.Helper()
	size, err := r.readSize()
	if err != nil || int(size) != len(want) {
		t.Fatalf("readSize: %d, %v; want %d", size, err, len(want))
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil || string(body) != want {
		t.Fatalf("body: %q, %v; want %q", rawTruncate(body), err, rawTruncate([]byte(want)))
	}
}
