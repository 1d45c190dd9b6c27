package broker

// --statsd-address: every --statsd-interval the broker pushes its /stats
// snapshot to statsd under nsqd's metric names, so dashboards built for
// nsqd keep working.

import (
	"context"
	"fmt"
	"sync"

	"wren/internal/statsd"
	"wren/protocol"
)

// startStatsd starts the statsd pusher when an address is configured and
// returns what stops it and waits for it (a no-op otherwise). The listeners
// must be open: the prefix names the HTTP port.
func (b *Broker) startStatsd() (stop func()) {
	if b.opts.StatsdAddress == "" {
		return func() {}
	}
	pusher := statsd.NewPusher(statsd.Options{
		Address:    b.opts.StatsdAddress,
		Prefix:     statsd.Prefix(b.opts.StatsdPrefix, b.opts.BroadcastAddress, b.broadcastHTTPPort()),
		Interval:   b.opts.StatsdInterval,
		PacketSize: b.opts.StatsdUDPPacketSize,
		Logger:     b.logger,
	}, b.collectStatsd)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pusher.Run(ctx)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// collectStatsd adds nsqd's metrics for every topic and channel (but the
// ephemeral ones with --statsd-exclude-ephemeral) and, with
// --statsd-mem-stats, the Go runtime's.
func (b *Broker) collectStatsd(batch *statsd.Batch) {
	excludeEphemeral := b.opts.StatsdExcludeEphemeral
	for _, t := range b.statsSnapshot("", "", false).Topics {
		if excludeEphemeral && protocol.IsEphemeral(t.TopicName) {
			continue
		}
		name := "topic." + t.TopicName + "."
		batch.Counter(name+"message_count", t.MessageCount)
		batch.Counter(name+"message_bytes", t.MessageBytes)
		batch.Gauge(name+"depth", t.Depth)
		batch.Gauge(name+"backend_depth", t.BackendDepth)
		addLatencyGauges(batch, name, t.E2eProcessingLatency)
		for _, c := range t.Channels {
			if excludeEphemeral && protocol.IsEphemeral(c.ChannelName) {
				continue
			}
			name := name + "channel." + c.ChannelName + "."
			batch.Counter(name+"message_count", c.MessageCount)
			batch.Gauge(name+"depth", c.Depth)
			batch.Gauge(name+"backend_depth", c.BackendDepth)
			batch.Gauge(name+"in_flight_count", int64(c.InFlightCount))
			batch.Gauge(name+"deferred_count", int64(c.DeferredCount))
			batch.Counter(name+"requeue_count", c.RequeueCount)
			batch.Counter(name+"timeout_count", c.TimeoutCount)
			batch.Gauge(name+"clients", int64(c.ClientCount))
			addLatencyGauges(batch, name, c.E2eProcessingLatency)
		}
	}
	if b.opts.StatsdMemStats {
		m := readMemoryStats()
		batch.Gauge("mem.heap_objects", int64(m.HeapObjects))
		batch.Gauge("mem.heap_idle_bytes", int64(m.HeapIdleBytes))
		batch.Gauge("mem.heap_in_use_bytes", int64(m.HeapInUseBytes))
		batch.Gauge("mem.heap_released_bytes", int64(m.HeapReleasedBytes))
		batch.Gauge("mem.gc_pause_usec_100", int64(m.GCPauseUsec100))
		batch.Gauge("mem.gc_pause_usec_99", int64(m.GCPauseUsec99))
		batch.Gauge("mem.gc_pause_usec_95", int64(m.GCPauseUsec95))
		batch.Gauge("mem.next_gc_bytes", int64(m.NextGCBytes))
		batch.Counter("mem.gc_runs", uint64(m.GCTotalRuns))
	}
}

// addLatencyGauges adds e2e_processing_latency_<percent> gauges in
// nanoseconds. The percent is the quantile × 100 rounded to an integer,
// as nsqd names it: 0.99 is _99, and 0.999 is _100 like 1.0.
func addLatencyGauges(batch *statsd.Batch, name string, l latencyStats) {
	for _, p := range l.Percentiles {
		batch.Gauge(fmt.Sprintf("%se2e_processing_latency_%.0f", name, p.Quantile*100), int64(p.Value))
	}
}
