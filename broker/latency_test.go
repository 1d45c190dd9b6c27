package broker

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// latencyJSON is the part of /stats this file checks, decoded loosely so
// that a missing field shows as nil.
type latencyJSON struct {
	Topics []struct {
		TopicName string         `json:"topic_name"`
		E2E       map[string]any `json:"e2e_processing_latency"`
		Channels  []struct {
			ChannelName string         `json:"channel_name"`
			E2E         map[string]any `json:"e2e_processing_latency"`
		} `json:"channels"`
	} `json:"topics"`
}

// checkLatency checks one e2e_processing_latency object: count samples and
// a value for each quantile, in order, between 0 and the test's length.
func checkLatency(t *testing.T, where string, e2e map[string]any, count int, quantiles []float64, limit time.Duration) {
	t.Helper()
	if got := e2e["count"]; got != float64(count) {
		t.Errorf("%s: count %v, want %d", where, got, count)
	}
	ps, _ := e2e["percentiles"].([]any)
	if len(ps) != len(quantiles) {
		t.Fatalf("%s: percentiles %v, want %d of them", where, e2e["percentiles"], len(quantiles))
	}
	for i, p := range ps {
		m := p.(map[string]any)
		if len(m) != 2 || m["quantile"] != quantiles[i] {
			t.Errorf("%s: percentile %d is %v, want {quantile: %v, value}", where, i, m, quantiles[i])
		}
		if v, _ := m["value"].(float64); v <= 0 || v > float64(limit) {
			t.Errorf("%s: value %v ns for q%v, want in (0, %s]", where, m["value"], quantiles[i], limit)
		}
	}
}

func TestE2ELatencyInStats(t *testing.T) {
	began := time.Now()
	quantiles := []float64{1, 0.99, 0.5} // reported highest first, as nsqd
	b := startTestBroker(t, func(o *Options) {
		o.E2EProcessingLatencyPercentiles = []float64{0.5, 1, 0.99}
	})
	// Two channels, both subscribed before the publishes: the first FINs
	// every message, the second only the first 5 (the rest it requeues,
	// which records no latency).
	all := &collector{}
	newConsumer(t, b, "lat", "all", nil, all)
	some := &collector{}
	some.handle = func(*nsq.Message) error {
		if some.count() > 5 {
			return errors.New("requeued by the test")
		}
		return nil
	}
	newConsumer(t, b, "lat", "some", nil, some)
	waitSubscribed(t, b, "lat", "all")
	waitSubscribed(t, b, "lat", "some")
	p := newProducer(t, b, nil)
	const n = 20
	for range n {
		if err := p.Publish("lat", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	addr := b.HTTPAddr().String()
	var s latencyJSON
	pollUntil(t, 5*time.Second, "20 + 5 FINs counted", func() bool {
		httpJSON(t, addr, "/stats?format=json", &s)
		if len(s.Topics) != 1 || len(s.Topics[0].Channels) != 2 {
			return false
		}
		return s.Topics[0].E2E["count"] == float64(n+5) && s.Topics[0].Channels[1].E2E["count"] == float64(5)
	})
	limit := time.Since(began)
	topic := s.Topics[0]
	checkLatency(t, "topic", topic.E2E, n+5, quantiles, limit)
	checkLatency(t, "channel all", topic.Channels[0].E2E, n, quantiles, limit)
	checkLatency(t, "channel some", topic.Channels[1].E2E, 5, quantiles, limit)

	// A channel filter narrows the channels, not the topic's merge.
	httpJSON(t, addr, "/stats?format=json&topic=lat&channel=some", &s)
	checkLatency(t, "topic filtered to channel some", s.Topics[0].E2E, n+5, quantiles, limit)

	// The text report shows each value in human units, highest quantile
	// first.
	text := httpDo(t, b, "GET", "/stats?format=text", nil).body
	value := `[0-9]+\.[0-9](ns|us|ms|s)`
	for _, want := range []string{
		`\[lat +\] depth: .* msgs: 20 +e2e%: ` + value + `, ` + value + `, ` + value + `\n`,
		`\[all +\] depth: .* e2e%: ` + value + `, ` + value + `, ` + value + `\n`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("text stats do not match %q:\n%s", want, text)
		}
	}
}

func TestE2ELatencyOffByDefault(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	if err := p.Publish("lat", []byte("x")); err != nil {
		t.Fatal(err)
	}
	h := &collector{}
	newConsumer(t, b, "lat", "ch", nil, h)
	waitFor(t, 5*time.Second, "the message", func() bool { return h.count() == 1 })
	if ch := b.ExistingTopic("lat").ExistingChannel("ch"); ch.latency != nil {
		t.Errorf("channel keeps a latency window without configured percentiles")
	}
	r := httpDo(t, b, "GET", "/stats?format=json", nil)
	var s latencyJSON
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatal(err)
	}
	const off = `"e2e_processing_latency":{"count":0,"percentiles":null}`
	if got := strings.Count(r.body, off); got != 2 {
		t.Errorf("want %s for the topic and its channel, found it %d times in %s", off, got, r.body)
	}
	text := httpDo(t, b, "GET", "/stats?format=text", nil).body
	if !strings.Contains(text, "e2e%: \n") {
		t.Errorf("text stats should end e2e%% with nothing:\n%s", text)
	}
}

// --e2e-processing-latency-window-time bounds what the quantiles cover:
// once a whole window has passed without a FIN, a channel reports no
// samples.
func TestE2ELatencyWindowTime(t *testing.T) {
	b := startTestBroker(t, func(o *Options) {
		o.E2EProcessingLatencyPercentiles = []float64{0.99}
		o.E2EProcessingLatencyWindowTime = 400 * time.Millisecond
	})
	h := &collector{}
	newConsumer(t, b, "window", "c", nil, h)
	if err := newProducer(t, b, nil).Publish("window", []byte("x")); err != nil {
		t.Fatal(err)
	}
	addr := b.HTTPAddr().String()
	count := func() any {
		var s latencyJSON
		httpJSON(t, addr, "/stats?format=json&topic=window", &s)
		if len(s.Topics) != 1 || len(s.Topics[0].Channels) != 1 {
			return nil
		}
		return s.Topics[0].Channels[0].E2E["count"]
	}
	pollUntil(t, 5*time.Second, "the FIN counted", func() bool { return count() == float64(1) })
	pollUntil(t, 5*time.Second, "the window to move past the FIN", func() bool { return count() == float64(0) })
}
