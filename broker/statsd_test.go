package broker

import (
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"wren/internal/statsd/statsdtest"
)

// statsdLine is one received line, its prefix taken off.
type statsdLine struct {
	name  string
	value int64
	kind  string // "c" or "g"
}

// lines parses every line received so far; each must be
// "<prefix><name>:<int>|c" or "|g".
func statsdLines(t *testing.T, sink *statsdtest.Sink, prefix string) []statsdLine {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `([^:|]+):(-?[0-9]+)\|([cg])$`)
	var out []statsdLine
	for _, pkt := range sink.Packets() {
		for _, l := range strings.Split(strings.TrimSuffix(pkt, "\n"), "\n") {
			m := re.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line %q is not %s<name>:<int>|c or |g", l, prefix)
			}
			v, _ := strconv.ParseInt(m[2], 10, 64)
			out = append(out, statsdLine{name: m[1], value: v, kind: m[3]})
		}
	}
	return out
}

// statsdSummary sums each counter's increases and keeps each gauge's
// last value, naming the kind it was sent as.
func statsdSummary(lines []statsdLine) map[string]string {
	counters := map[string]int64{}
	out := map[string]string{}
	for _, l := range lines {
		if l.kind == "c" {
			counters[l.name] += l.value
			out[l.name] = fmt.Sprintf("%d|c", counters[l.name])
		} else {
			out[l.name] = fmt.Sprintf("%d|g", l.value)
		}
	}
	return out
}

func TestStatsdPushesNsqdMetrics(t *testing.T) {
	sink := statsdtest.Listen(t)
	b := startTestBroker(t, func(o *Options) {
		o.StatsdAddress = sink.Addr()
		o.StatsdInterval = 100 * time.Millisecond
		o.StatsdUDPPacketSize = 200
		o.E2EProcessingLatencyPercentiles = []float64{0.99, 0.5}
	})
	prefix := fmt.Sprintf("nsq.127_0_0_1_%d.", portOf(b.HTTPAddr()))

	h := &collector{}
	newConsumer(t, b, "st", "ch", nil, h)
	tail := &collector{}
	newConsumer(t, b, "st", "tail#ephemeral", nil, tail)
	waitSubscribed(t, b, "st", "ch")
	waitSubscribed(t, b, "st", "tail#ephemeral")
	p := newProducer(t, b, nil)
	for i := range 10 {
		if err := p.Publish("st", []byte(fmt.Sprint("message ", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "10 messages on both channels", func() bool { return h.count() == 10 && tail.count() == 10 })

	want := map[string]string{
		"topic.st.message_count":                "10|c",
		"topic.st.message_bytes":                "90|c",
		"topic.st.depth":                        "0|g",
		"topic.st.backend_depth":                "0|g",
		"topic.st.channel.ch.message_count":     "10|c",
		"topic.st.channel.ch.requeue_count":     "0|c",
		"topic.st.channel.ch.timeout_count":     "0|c",
		"topic.st.channel.ch.depth":             "0|g",
		"topic.st.channel.ch.backend_depth":     "0|g",
		"topic.st.channel.ch.in_flight_count":   "0|g",
		"topic.st.channel.ch.deferred_count":    "0|g",
		"topic.st.channel.ch.clients":           "1|g",
		"topic.st.channel.tail#ephemeral.depth": "0|g",
	}
	var got map[string]string
	var lines []statsdLine
	check := func() error {
		lines = statsdLines(t, sink, prefix)
		got = statsdSummary(lines)
		for name, v := range want {
			if got[name] != v {
				return fmt.Errorf("%s is %q, want %q", name, got[name], v)
			}
		}
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for err := check(); err != nil; err = check() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %v; received %v", err, got)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Counters are increases: once everything is counted, later pushes
	// send 0.
	for _, l := range lines {
		if l.kind == "c" && l.value < 0 {
			t.Errorf("counter %s went down by %d", l.name, -l.value)
		}
	}
	// The e2e gauges are in nanoseconds, named as nsqd names them.
	for _, name := range []string{
		"topic.st.e2e_processing_latency_99", "topic.st.e2e_processing_latency_50",
		"topic.st.channel.ch.e2e_processing_latency_99", "topic.st.channel.ch.e2e_processing_latency_50",
	} {
		v, kind, _ := strings.Cut(got[name], "|")
		ns, _ := strconv.ParseInt(v, 10, 64)
		if kind != "g" || ns <= 0 || ns > int64(5*time.Second) {
			t.Errorf("%s = %q, want a gauge of some nanoseconds", name, got[name])
		}
	}
	for _, name := range []string{
		"mem.heap_objects", "mem.heap_idle_bytes", "mem.heap_in_use_bytes", "mem.heap_released_bytes",
		"mem.gc_pause_usec_100", "mem.gc_pause_usec_99", "mem.gc_pause_usec_95", "mem.next_gc_bytes",
	} {
		if !strings.HasSuffix(got[name], "|g") {
			t.Errorf("%s = %q, want a gauge", name, got[name])
		}
	}
	if !strings.HasSuffix(got["mem.gc_runs"], "|c") {
		t.Errorf("mem.gc_runs = %q, want a counter", got["mem.gc_runs"])
	}
	for _, pkt := range sink.Packets() {
		if len(pkt) > 200 || !strings.HasSuffix(pkt, "\n") {
			t.Errorf("packet of %d bytes (limit 200), not ending a line: %q", len(pkt), pkt)
		}
	}
}

func TestStatsdExcludeEphemeral(t *testing.T) {
	sink := statsdtest.Listen(t)
	b := startTestBroker(t, func(o *Options) {
		o.StatsdAddress = sink.Addr()
		o.StatsdInterval = 100 * time.Millisecond
		o.StatsdExcludeEphemeral = true
		o.StatsdMemStats = false
		o.StatsdPrefix = "wren"
	})
	newConsumer(t, b, "kept", "c#ephemeral", nil, &collector{})
	newConsumer(t, b, "kept", "d", nil, &collector{})
	newConsumer(t, b, "gone#ephemeral", "x", nil, &collector{})
	waitSubscribed(t, b, "kept", "c#ephemeral")
	waitSubscribed(t, b, "gone#ephemeral", "x")
	waitSubscribed(t, b, "kept", "d")

	// Every push after the subscriptions reports d's client.
	clients := func() int {
		n := 0
		for _, l := range statsdLines(t, sink, "wren.") {
			if l.name == "topic.kept.channel.d.clients" && l.value == 1 {
				n++
			}
		}
		return n
	}
	waitFor(t, 5*time.Second, "two pushes with d's client", func() bool { return clients() >= 2 })
	for _, l := range statsdLines(t, sink, "wren.") {
		if strings.Contains(l.name, "ephemeral") || strings.HasPrefix(l.name, "mem.") {
			t.Errorf("sent %s with --statsd-exclude-ephemeral and no mem stats", l.name)
		}
	}
}

// A statsd address where nothing listens: the broker works on, and each
// push logs one line at most however many of its packets fail.
func TestStatsdDaemonDown(t *testing.T) {
	addr := statsdtest.UnusedAddr(t)
	logs := &logBuffer{}
	began := time.Now()
	const interval = 20 * time.Millisecond
	b := startTestBroker(t, func(o *Options) {
		o.StatsdAddress = addr
		o.StatsdInterval = interval
		o.StatsdUDPPacketSize = 40 // a packet per line: many sends per push
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	p := newProducer(t, b, nil)
	if err := p.Publish("down", []byte("x")); err != nil {
		t.Fatal(err)
	}
	h := &collector{}
	newConsumer(t, b, "down", "ch", nil, h)
	waitFor(t, 5*time.Second, "the message", func() bool { return h.count() == 1 })
	// Loopback reports the unreachable port at once, so later sends of
	// each push fail.
	failures := func() int { return len(logs.lines("sending stats to statsd failed")) }
	waitFor(t, 5*time.Second, "two failed pushes logged", func() bool { return failures() >= 2 })
	if n, pushes := failures(), int(time.Since(began)/interval)+1; n > pushes {
		t.Errorf("%d failure lines in at most %d pushes:\n%s", n, pushes, logs)
	}
}
