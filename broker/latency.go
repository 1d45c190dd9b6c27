package broker

// End-to-end processing latency (--e2e-processing-latency-percentile): on
// each FIN a channel records how long ago the message was published, and
// /stats and statsd report quantiles of the last window, a topic's merged
// from its channels, as nsqd does.
//
// A window's lock is innermost: FIN takes it after takeInFlight has let go
// of client.mu, and /stats with no other lock held.

import (
	"cmp"
	"slices"
	"time"

	"wren/internal/quantile"
)

// latencyConfig is what every channel's latency window is made of.
type latencyConfig struct {
	window    time.Duration
	quantiles []float64
}

// newLatencyConfig takes the quantiles in descending order, the order
// nsqd's flag parsing leaves them in and so the order /stats lists them.
func newLatencyConfig(opts *Options) latencyConfig {
	quantiles := slices.Clone(opts.E2EProcessingLatencyPercentiles)
	slices.SortFunc(quantiles, func(a, b float64) int { return cmp.Compare(b, a) })
	return latencyConfig{window: opts.E2EProcessingLatencyWindowTime, quantiles: quantiles}
}

// newWindow returns a window, or nil when no quantiles are configured.
func (l latencyConfig) newWindow() *quantile.Window {
	return quantile.New(l.window, l.quantiles, time.Now())
}

// observeFinish records a finished message's latency since its publish.
// Without configured quantiles it costs one nil check.
func (c *Channel) observeFinish(m *message) {
	if c.latency == nil {
		return
	}
	now := time.Now()
	c.latency.Observe(time.Duration(now.UnixNano()-m.Timestamp), now)
}

// channelLatency reports a channel's window in /stats' shape.
func (b *Broker) channelLatency(ch *Channel) latencyStats {
	return toLatencyStats(ch.latency.Result(time.Now()))
}

// topicLatency merges the windows of all the topic's channels, whatever
// channel filter /stats was given, as nsqd does. A topic without channels
// reports no percentiles at all.
func (b *Broker) topicLatency(t *Topic) latencyStats {
	channels := t.Channels()
	windows := make([]*quantile.Window, 0, len(channels))
	for _, ch := range channels {
		windows = append(windows, ch.latency)
	}
	return toLatencyStats(quantile.Merge(time.Now(), windows...))
}

func toLatencyStats(r quantile.Result) latencyStats {
	ls := latencyStats{Count: r.Count}
	if r.Percentiles != nil {
		ls.Percentiles = make([]latencyPercentile, len(r.Percentiles))
		for i, p := range r.Percentiles {
			ls.Percentiles[i] = latencyPercentile{Quantile: p.Quantile, Value: p.Value}
		}
	}
	return ls
}
