package statsd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"wren/internal/statsd/statsdtest"
)

func TestAppendLines(t *testing.T) {
	got := AppendCounter(nil, "nsq.host_4151.", "topic.t.message_count", 12)
	got = AppendGauge(got, "nsq.host_4151.", "topic.t.depth", -3)
	got = AppendGauge(got, "", "mem.heap_objects", 0)
	want := "nsq.host_4151.topic.t.message_count:12|c\nnsq.host_4151.topic.t.depth:-3|g\nmem.heap_objects:0|g\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { got = AppendGauge(got[:0], "p.", "n", 1<<40) }); n != 0 {
		t.Errorf("AppendGauge into a big enough buffer allocates %v times", n)
	}
}

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		port          int
		want          string
	}{
		{"nsq.%s", "10.0.0.1", 4151, "nsq.10_0_0_1_4151."},
		{"nsq.%s.", "my.host", 4151, "nsq.my_host_4151."},
		{"%s.nsq.%s", "h", 1, "h_1.nsq.h_1."},
		{"nsq", "h", 4151, "nsq."},
		{"nsq.%s", "::1", 4151, "nsq.[__1]_4151."},
		{"", "h", 4151, ""},
	} {
		if got := Prefix(tc.pattern, tc.host, tc.port); got != tc.want {
			t.Errorf("Prefix(%q, %q, %d) = %q, want %q", tc.pattern, tc.host, tc.port, got, tc.want)
		}
	}
}

func TestBatchPackets(t *testing.T) {
	b := NewBatch("p.", 30, nil)
	b.Gauge("a", 1)                        // "p.a:1|g\n", 8 bytes
	b.Gauge("bbbbbbbbbbbb", 22)            // 20 bytes: 28 in all
	b.Gauge("c", 333)                      // 10 bytes: a new packet
	b.Gauge("dddddddddddddddddddddddd", 4) // 32 bytes, over the limit: alone
	b.Gauge("e", 5)
	want := []string{
		"p.a:1|g\np.bbbbbbbbbbbb:22|g\n",
		"p.c:333|g\n",
		"p.dddddddddddddddddddddddd:4|g\n",
		"p.e:5|g\n",
	}
	var got []string
	for _, p := range b.Packets() {
		got = append(got, string(p))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("packets\n%q\nwant\n%q", got, want)
	}
	if n := len(NewBatch("p.", 508, nil).Packets()); n != 0 {
		t.Errorf("empty batch has %d packets", n)
	}
}

func TestBatchCounterDeltas(t *testing.T) {
	b := NewBatch("", 508, nil)
	b.Counter("x", 10)
	b.Counter("y", 7)
	if got := string(bytes.Join(b.Packets(), nil)); got != "x:10|c\ny:7|c\n" {
		t.Errorf("first push %q", got)
	}
	b = NewBatch("", 508, b.Totals())
	b.Counter("x", 15) // +5
	b.Counter("y", 3)  // went down: deleted and made again
	b.Counter("z", 2)  // new
	if got := string(bytes.Join(b.Packets(), nil)); got != "x:5|c\ny:3|c\nz:2|c\n" {
		t.Errorf("second push %q", got)
	}
	b = NewBatch("", 508, b.Totals())
	b.Counter("x", 15)
	if got := string(bytes.Join(b.Packets(), nil)); got != "x:0|c\n" {
		t.Errorf("third push %q", got)
	}
	if _, ok := b.Totals()["y"]; ok {
		t.Errorf("a name not reported this push is still remembered")
	}
}

// FuzzBatch checks, for any names and packet size, that the packets carry
// every line once, in order, and that only a line longer than the packet
// size makes a packet bigger than it.
func FuzzBatch(f *testing.F) {
	f.Add("topic.a.depth,topic.b.channel.c.clients,mem.heap_objects", 508, int64(7))
	f.Add("a,b,c", 1, int64(-1))
	f.Add(strings.Repeat("x", 600)+",y", 508, int64(1<<62))
	f.Fuzz(func(t *testing.T, names string, size int, value int64) {
		if size < 1 || size > 1<<16 || strings.Contains(names, "\n") {
			t.Skip() // names come from topics and channels: no newlines
		}
		b := NewBatch("nsq.h_1.", size, nil)
		var want []byte
		for _, name := range strings.Split(names, ",") {
			b.Gauge(name, value)
			want = AppendGauge(want, "nsq.h_1.", name, value)
		}
		packets := b.Packets()
		if got := bytes.Join(packets, nil); !bytes.Equal(got, want) {
			t.Fatalf("packets %q, want lines %q", got, want)
		}
		for _, p := range packets {
			if len(p) == 0 || p[len(p)-1] != '\n' {
				t.Fatalf("packet %q does not end a line", p)
			}
			if len(p) > size && bytes.Count(p, []byte("\n")) > 1 {
				t.Fatalf("packet of %d bytes over %d holds more than one line: %q", len(p), size, p)
			}
		}
	})
}

func TestPusherSendsEachInterval(t *testing.T) {
	sink := statsdtest.Listen(t)
	var mu sync.Mutex
	total := uint64(0)
	p := NewPusher(Options{
		Address:    sink.Addr(),
		Prefix:     "nsq.h_1.",
		Interval:   20 * time.Millisecond,
		PacketSize: 508,
		Logger:     slog.New(slog.DiscardHandler),
	}, func(b *Batch) {
		mu.Lock()
		total += 3
		b.Counter("n", total)
		mu.Unlock()
		b.Gauge("g", 9)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Packets()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s only %q arrived", sink.Packets())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	for i, pkt := range sink.Packets()[:3] {
		if pkt != "nsq.h_1.n:3|c\nnsq.h_1.g:9|g\n" {
			t.Errorf("push %d sent %q, want an increase of 3 and the gauge", i, pkt)
		}
	}
}

// A statsd address where nothing listens: pushes fail quietly and promptly.
func TestPusherWithoutDaemon(t *testing.T) {
	addr := statsdtest.UnusedAddr(t)
	var logs bytes.Buffer
	p := NewPusher(Options{
		Address:    addr,
		Interval:   time.Second,
		PacketSize: 10,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	}, func(b *Batch) {
		for i := range 50 {
			b.Gauge(fmt.Sprint("g", i), 1)
		}
	})
	start := time.Now()
	for range 3 {
		p.push(context.Background())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three pushes to nowhere took %s", d)
	}
	if n := strings.Count(logs.String(), "\n"); n > 3 {
		t.Errorf("%d log lines for 3 pushes:\n%s", n, logs.String())
	}
}
