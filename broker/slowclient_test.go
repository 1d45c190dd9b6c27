package broker

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"wren/protocol"
)

// trickle writes p one byte per interval from its own goroutine until p
// is sent, the connection fails or the test ends.
func trickle(t *testing.T, conn net.Conn, p []byte, interval time.Duration) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() { close(done); <-stopped })
	go func() {
		defer close(stopped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range p {
			if _, err := conn.Write(p[i : i+1]); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	}()
}

// readUntilClosed reads frames until the server closes the connection and
// returns the error frames it sent first.
func readUntilClosed(t *testing.T, raw *rawClient) []string {
	t.Helper()
	var errs []string
	for {
		frameType, data, err := raw.readFrame()
		if err != nil {
			if !isClosedErr(err) {
				t.Fatalf("got %v, want the connection closed", err)
			}
			return errs
		}
		if frameType != protocol.FrameTypeError {
			t.Fatalf("got frame type %d %q, want an error or the close", frameType, rawTruncate(data))
		}
		errs = append(errs, string(data))
	}
}

// TestTrickledCommandIsCut sends a command line a byte every 250 ms with a
// 1 s heartbeat: every read renews nothing, so the whole line must arrive
// within 2 s, as in nsqd, while a normal client carries on.
func TestTrickledCommandIsCut(t *testing.T) {
	b := startTestBroker(t, nil)
	normal := dialRaw(t, b)
	normal.expectAlive(t)

	hostile := dialRaw(t, b)
	hostile.identify(t, map[string]any{"heartbeat_interval": 1000})
	var c *client
	waitFor(t, 5*time.Second, "the hostile client registered", func() bool {
		for _, cl := range b.clientsByID() {
			if cl.heartbeatNS.Load() == int64(time.Second) {
				c = cl
				return true
			}
		}
		return false
	})
	start := time.Now()
	trickle(t, hostile.conn, []byte("PUB "+strings.Repeat("t", 60)+"\n"), 250*time.Millisecond)
	hostile.expectClosed(t)
	took := time.Since(start)
	if took < 1500*time.Millisecond || took > 3500*time.Millisecond {
		t.Errorf("trickling client cut after %s, want about 2s (two heartbeat intervals)", took)
	}
	if got := c.closeReason(); got != closeSlowCommand {
		t.Errorf("close reason %q, want %q", got, closeSlowCommand)
	}
	normal.expectAlive(t)
}

// TestTrickledBodyHoldsWhatArrived declares a 5 MiB MPUB body and sends
// 256 KiB of it: the connection's body buffer follows what arrived, not
// what was declared, and the connection is cut when its command's
// deadline passes.
func TestTrickledBodyHoldsWhatArrived(t *testing.T) {
	b := startTestBroker(t, nil)
	raw := dialRaw(t, b)
	c := onlyClient(t, b)
	raw.identify(t, map[string]any{"heartbeat_interval": 1000})

	const declared, sent = 5 << 20, 256 << 10
	start := time.Now()
	raw.sendRaw(t, rawWithBody("MPUB", declared, make([]byte, sent), "trickled_body"))
	waitFor(t, 5*time.Second, "the sent part of the body to be read", func() bool {
		return c.bodyBufferSize.Load() >= sent
	})
	// At most twice what arrived, plus a step and the allocator's rounding.
	if got := c.bodyBufferSize.Load(); got > 2*sent+2*bodyGrowthStep {
		t.Errorf("body buffer is %d bytes after %d of %d arrived", got, sent, declared)
	}
	errs := readUntilClosed(t, raw)
	took := time.Since(start)
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "E_BAD_BODY MPUB failed to read body") {
		t.Errorf("errors before the close: %q, want one E_BAD_BODY", errs)
	}
	if took > 3500*time.Millisecond {
		t.Errorf("cut after %s, want about 2s", took)
	}
	if got := c.closeReason(); got != closeSlowBody {
		t.Errorf("close reason %q, want %q", got, closeSlowBody)
	}
	if got := c.bodyBufferSize.Load(); got != 0 {
		t.Errorf("body buffer size %d after the read failed, want 0", got)
	}
}

// TestAppendBody reads bodies through appendBody from a client's reader:
// into a buffer with room, and grown in steps when there is none.
func TestAppendBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes
	for _, tc := range []struct {
		name string
		dst  []byte
	}{
		{"no buffer", nil},
		{"buffer with room", make([]byte, 0, len(body))},
		{"buffer too small", make([]byte, 0, 1000)},
		{"after a prefix", []byte("prefix")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{reader: newConnReader(bytes.NewReader(body))}
			prefix := string(tc.dst)
			got, err := c.appendBody(tc.dst, len(body))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != prefix+string(body) {
				t.Fatalf("read %d bytes, not the body", len(got))
			}
			if c.bodyBufferSize.Load() != 0 {
				t.Errorf("bodyBufferSize %d after the read", c.bodyBufferSize.Load())
			}
		})
	}
	c := &client{reader: newConnReader(bytes.NewReader(body[:100]))}
	if _, err := c.appendBody(nil, len(body)); err == nil {
		t.Error("short body read without error")
	}
}

// TestStatsWhileConsumerStuck subscribes a consumer that never reads its
// socket and sends it more than the socket buffers hold, so its pump
// blocks in a write holding writeMu. /stats still answers at once, and
// the write deadline (one heartbeat interval) cuts the consumer off with
// its reason logged once.
func TestStatsWhileConsumerStuck(t *testing.T) {
	logs := &logBuffer{}
	b := startTestBroker(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	stuck := dialRaw(t, b)
	if err := stuck.conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	stuck.identify(t, map[string]any{"heartbeat_interval": 4000})
	stuck.send(t, "SUB", nil, "stuck", "ch")
	stuck.expectResponse(t, "OK")
	stuck.send(t, "RDY", nil, "100")
	c := onlyClient(t, b)

	topic, err := b.Topic("stuck")
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1000<<10)
	for range 24 {
		if _, err := topic.publish([][]byte{body}, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the pump blocked in a write", func() bool {
		if c.messageCount.Load() == 0 {
			return false
		}
		if c.writeMu.TryLock() {
			c.writeMu.Unlock()
			return false
		}
		return true
	})

	start := time.Now()
	r := httpDo(t, b, http.MethodGet, "/stats?format=json", nil)
	took := time.Since(start)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"channel_name":"ch"`) {
		t.Fatalf("/stats: %d %s", r.status, rawTruncate([]byte(r.body)))
	}
	if took > time.Second {
		t.Errorf("/stats took %s with a consumer stuck, want well under 1s", took)
	}
	if got := c.closeReason(); got != closeNone {
		t.Fatalf("consumer closed (%q) before /stats answered: the test proved nothing", got)
	}

	waitFor(t, 10*time.Second, "the stuck consumer cut off", func() bool {
		return c.closeReason() != closeNone
	})
	if got := c.closeReason(); got != closeWriteTimeout {
		t.Errorf("close reason %q, want %q", got, closeWriteTimeout)
	}
	waitFor(t, 5*time.Second, "the close logged", func() bool {
		return len(logs.lines(`msg="client closed"`)) > 0
	})
	if lines := logs.lines(`msg="client closed"`); len(lines) != 1 || !strings.Contains(lines[0], `reason="write timeout"`) {
		t.Errorf("close logged as %q, want once with reason \"write timeout\"", lines)
	}
}

// TestManyTrickledBodies is the report's attack at a test's scale: 20
// connections each declare a 5 MiB MPUB body and send 64 KiB of it. Together
// they hold buffers for what they sent, not 100 MiB, and all are closed by
// their command deadline.
func TestManyTrickledBodies(t *testing.T) {
	b := startTestBroker(t, nil)
	const conns, declared, sent = 20, 5 << 20, 64 << 10
	raws := make([]*rawClient, conns)
	for i := range raws {
		raws[i] = dialRaw(t, b)
		// 2 s heartbeats: the first deadline must not pass while the
		// last connection is still being set up.
		raws[i].identify(t, map[string]any{"heartbeat_interval": 2000})
		raws[i].sendRaw(t, rawWithBody("MPUB", declared, make([]byte, sent), "many_trickled"))
	}
	var held int64
	waitFor(t, 5*time.Second, "every connection's sent bytes read", func() bool {
		held = 0
		reading := 0
		for _, c := range b.clientsByID() {
			if n := c.bodyBufferSize.Load(); n >= sent {
				held += n
				reading++
			}
		}
		return reading == conns
	})
	if held > conns*(2*sent+2*bodyGrowthStep) {
		t.Errorf("%d connections hold %d bytes of body buffers after sending %d each", conns, held, sent)
	}
	for _, raw := range raws {
		readUntilClosed(t, raw)
	}
	waitFor(t, 5*time.Second, "every connection removed", func() bool {
		return len(b.clientsByID()) == 0
	})
}
